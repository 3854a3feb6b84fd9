"""Draw every test prediction against its ground truth (``tools/test.py --show-dir DIR``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from mmengine.hooks import Hook

from ullava.registry import HOOKS


def sample_canvas(meta: dict) -> np.ndarray | None:
    """A sample's image, or its clip's first frame, RGB uint8; None for text-only."""
    # imported here: every tool imports ullava.engine first; keep that light and cycle-free
    from ullava.datasets.transforms.loading import LoadVideo, read_image
    if meta.get('img_path'):
        return read_image(meta['img_path'], meta, 'img_path')
    if meta.get('video_path'):
        return LoadVideo(num_frames=1).transform(dict(meta))['frames'][0]
    return None


@HOOKS.register_module()
class ULLaVAVisualizationHook(Hook):
    """After each test iteration, draw each sample through :class:`ULLaVAVisualizer` into
    ``out_dir/<n>_<task>_<stem>.png`` (predicted masks filled, boxes drawn, GT in green, prompt /
    answer / GT answer as text). Text-only samples have nothing to draw on and are skipped.

    Args:
        out_dir: the folder for the PNGs (created).
        draw_gt: also draw the ground truth.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, draw_gt: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.draw_gt = draw_gt
        self._count = 0
        self._prefix = ''
        self._visualizer = None

    def before_test(self, runner) -> None:
        from ullava.visualization import ULLaVAVisualizer
        self._count = 0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # tools/test.py makes the runner's visualizer ours; a config that did not gets its own
        self._visualizer = runner.visualizer if isinstance(runner.visualizer, ULLaVAVisualizer) \
            else ULLaVAVisualizer.get_instance('ullava_show_dir')
        self._prefix = f'rank{runner.rank}_' if runner.world_size > 1 else ''  # no collisions

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for sample in outputs or []:
            image = sample_canvas(sample.metainfo)
            if image is None:
                continue
            meta = sample.metainfo
            stem = Path(meta.get('img_path') or meta.get('video_path')).stem
            name = f'{self._prefix}{self._count:05d}_{meta.get("task", "sample")}_{stem}'
            self._count += 1
            self._visualizer.add_datasample(name, image, sample, draw_gt=self.draw_gt,
                                            out_file=str(self.out_dir / f'{name}.png'))
