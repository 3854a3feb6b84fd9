"""tools/test.py --show-dir (ULLaVAVisualizationHook + ULLaVAVisualizer) and TensorBoard logging."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DEMO_CFG = ROOT / 'configs/demo/ullava_tiny_demo.py'
GREEN = (0, 255, 0)


@pytest.fixture(scope='module')
def small_test(world, tmp_path_factory):
    """A test config of a few RES, REC and video samples, and a random-weight checkpoint.

    Teacher forcing reads the given answer, so every RES sample has a [SEG] and a predicted mask.
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from ullava.registry import DATASETS, MODELS
    tmp = tmp_path_factory.mktemp('show')
    with pytest.MonkeyPatch.context() as mp:  # data_root is resolved when the config loads
        mp.setenv('ULLAVA_DEMO_DATA', str(world))
        cfg = Config.fromfile(str(DEMO_CFG))
    res, rec, video = (cfg.test_dataloader.dataset.datasets[i] for i in (0, 1, 6))
    res.portion = rec.portion = 0.1
    cfg.test_dataloader.dataset.datasets = [res, rec, video]
    tasks = ('res', 'rec', 'video_caption')
    cfg.test_evaluator = [e for e in cfg.test_evaluator if e.task in tasks]
    cfg.model.predict_protocol = 'teacher_forced'
    cfg.dump(str(tmp / 'show_cfg.py'))
    torch.manual_seed(0)
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, tmp / 'random.pth')
    with DefaultScope.overwrite_default_scope('ullava'):  # the pipelines' transforms are ours
        datasets = [DATASETS.build(c) for c in (res, rec, video)]
    return dict(dir=tmp, cfg=tmp / 'show_cfg.py', ckpt=tmp / 'random.pth', datasets=datasets)


@pytest.fixture(scope='module')
def shown(small_test, world):
    show = small_test['dir'] / 'show'
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', str(small_test['cfg']), str(small_test['ckpt']),
         '--work-dir', str(small_test['dir'] / 'work'), '--show-dir', str(show)],
        cwd=ROOT, env=dict(os.environ, ULLAVA_DEMO_DATA=str(world)), capture_output=True,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return show


def _downscaled(png: Path, shape) -> np.ndarray:
    """The drawn PNG brought back to the input's size (the visualizer enlarges small images)."""
    drawn = np.asarray(Image.open(png).convert('RGB'))
    factor = drawn.shape[0] // shape[0]
    assert drawn.shape[:2] == (shape[0] * factor, shape[1] * factor)
    return drawn[::factor, ::factor]


def test_one_png_per_sample(small_test, shown):
    names = sorted(p.name for p in shown.iterdir())
    res, rec, video = (len(d) for d in small_test['datasets'])
    assert len(names) == res + rec + video, names
    assert sum('_res_' in n for n in names) == res and sum('_video_caption_' in n for n in names)
    assert all(n.endswith('.png') and not n.startswith('.') for n in names)  # no temp files


def test_res_png_differs_from_input_where_the_mask_is(small_test, shown):
    dataset = small_test['datasets'][0]
    checked = 0
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        image = np.asarray(Image.open(sample.img_path).convert('RGB'))
        (png,) = shown.glob(f'{i:05d}_res_{Path(sample.img_path).stem}.png')
        drawn = _downscaled(png, image.shape)
        changed = np.abs(drawn.astype(int) - image).max(-1) > 20
        mask = sample.gt_masks.numpy().any(0)
        if mask.sum() < 20:
            continue
        assert changed[mask].mean() > 0.2, f'{png.name}: the mask region looks like the input'
        assert (drawn[mask] == GREEN).all(-1).any(), f'{png.name}: no green GT outline'
        assert not changed[~mask].all(), f'{png.name}: the whole image was replaced'
        checked += 1
    assert checked


def test_rec_png_draws_the_gt_box(small_test, shown):
    res_count = len(small_test['datasets'][0])
    sample = small_test['datasets'][1][0]['data_samples']
    image = np.asarray(Image.open(sample.img_path).convert('RGB'))
    (png,) = shown.glob(f'{res_count:05d}_rec_*.png')
    drawn = _downscaled(png, image.shape)
    x1, y1, x2, y2 = np.round(sample.gt_boxes[0].numpy()).astype(int)
    right_edge = drawn[y1:y2, min(x2, image.shape[1]) - 1]
    assert (right_edge == GREEN).all(-1).mean() > 0.5


def test_metrics_json_names_the_caption_tokenizer(small_test, shown):
    """A string metric (CaptionMetric's ``tokenizer``) survives MMEngine's logging and the dump."""
    import json
    metrics = json.loads((small_test['dir'] / 'work' / 'metrics.json').read_text())
    expected = 'ptb' if shutil.which('java') else 'regex'
    assert metrics['video_caption/tokenizer'] == expected
    assert isinstance(metrics['video_caption/CIDEr'], float)


def test_tensorboard_backend_writes_scalars(tmp_path):
    """vis_backends=[LocalVisBackend, TensorboardVisBackend] logs training curves."""
    from mmengine.visualization import Visualizer
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    vis = Visualizer(name='tb_test', save_dir=str(tmp_path),
                     vis_backends=[dict(type='LocalVisBackend'),
                                   dict(type='TensorboardVisBackend')])
    for step, loss in enumerate([1.0, 0.5, 0.25]):
        vis.add_scalars(dict(loss=loss), step=step)
    vis.close()
    (events,) = tmp_path.glob('vis_data/events.out.tfevents.*')
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    assert [e.value for e in acc.Scalars('loss')] == [1.0, 0.5, 0.25]


# ------------------------------------------------------------- overlay (MMEngine's drawing)
def _image(shape=(40, 56)):
    return np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)


def test_overlay_blends_exactly_where_the_mask_is():
    from ullava.visualization import overlay
    from ullava.visualization.visualizer import PRED_COLOURS
    image = _image()
    masks = np.zeros((2, 40, 56), bool)
    masks[0, 5:20, 4:30] = True
    masks[1, 25:35, 40:50] = True
    drawn = overlay(image, torch.from_numpy(masks), alpha=0.45)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    outside = ~masks.any(0)
    assert (drawn[outside] == image[outside]).all()  # untouched beyond the masks
    for mask, colour in zip(masks, PRED_COLOURS):  # (1 - a) image + a colour, one per mask
        blend = 0.55 * image[mask].astype(float) + 0.45 * np.array(colour, float)
        assert np.abs(drawn[mask] - blend).max() <= 1  # OpenCV rounds to uint8


def _ring(y1, x1, y2, x2, shape):
    """The pixels at most 1 px from the box's border columns / rows x1, x2, y1, y2."""
    ring = np.zeros(shape, bool)
    ring[y1 - 1:y2 + 2, x1 - 1:x2 + 2] = True
    ring[y1 + 2:y2 - 1, x1 + 2:x2 - 1] = False
    return ring


def test_overlay_draws_box_edges_and_nothing_else():
    from ullava.visualization import overlay
    from ullava.visualization.visualizer import PRED_COLOURS
    image = _image()
    x1, y1, x2, y2 = 10, 8, 40, 30
    drawn = overlay(image, boxes=np.array([[x1, y1, x2, y2]], np.float32))
    # 3 px lines centred on the box's pixel columns / rows, in full colour...
    line = _ring(y1, x1, y2, x2, image.shape[:2])
    assert (drawn[line] == PRED_COLOURS[0]).all()
    assert (drawn[~line] == image[~line]).all()  # ...and nothing else changed


def test_overlay_outlines_gt_masks_in_green_and_draws_gt_boxes():
    from ullava.visualization import overlay
    image = _image()
    gt = np.zeros((40, 56), bool)
    gt[10:30, 12:44] = True
    drawn = overlay(image, gt_masks=gt[None], gt_boxes=torch.tensor([[2., 2., 8., 9.]]))
    border = gt.copy()
    border[11:29, 13:43] = False  # the mask's outermost pixels: exactly the outline
    box = _ring(2, 2, 9, 8, gt.shape)
    assert (drawn[border | box] == GREEN).all()
    assert (drawn[~(border | box)] == image[~(border | box)]).all()  # an outline, not a fill


def test_overlay_without_targets_and_bad_input():
    from ullava.visualization import overlay
    image = _image()
    same = overlay(image, np.zeros((0, 40, 56), bool), np.zeros((0, 4)), None,
                   gt_boxes=[[30, 30, 10, 10]])  # a reversed box is skipped
    assert (same == image).all()
    with pytest.raises(ValueError, match=r'masks of shape \(20, 20\) cannot be drawn'):
        overlay(image, np.ones((1, 20, 20), bool))


def test_add_datasample_is_a_no_op_off_the_main_process(monkeypatch, tmp_path):
    """Other ranks of a distributed --show-dir run draw nothing (MMEngine's master_only), instead
    of failing on a visualizer whose drawing calls were all skipped."""
    import mmengine.dist.utils
    from mmengine.structures import BaseDataElement

    from ullava.visualization import ULLaVAVisualizer
    vis = ULLaVAVisualizer(name='test_off_main')
    sample = BaseDataElement(metainfo=dict(prompt='<image> Segment it.'), pred_text='[SEG]',
                             pred_masks=np.ones((1, 8, 8), bool))
    monkeypatch.setattr(mmengine.dist.utils, 'is_main_process', lambda *a, **k: False)
    out = tmp_path / 'drawn.png'
    assert vis.add_datasample('x', _image((8, 8)), sample, out_file=str(out)) is None
    assert not out.exists()
