"""Draw a config's samples as the model will see them (as MMDetection's browse_dataset).

``python tools/misc/browse_dataset.py CONFIG --output-dir DIR [--phase train|val|test] [--max N]``

Each sample goes through its dataset's pipeline; ``DIR/<n>_<task>_<image>.png`` shows the image
with the sample's target masks and boxes (``ULLaVAVisualizer``), and under it the tokenised
conversation, the supervised span (the tokens the loss sees) between « and »; ``.txt`` beside it
holds the same conversation. A mixture is browsed round robin, so every task shows up.
"""
import argparse
import os.path as osp
import sys
import textwrap
from itertools import groupby

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # a checkout

import numpy as np  # noqa: E402

from ullava.engine.launch import add_cfg_options, cli_main, load_config  # noqa: E402
from ullava.utils import UserError  # noqa: E402

PANEL_FONT = 8  # points; the panel is drawn in monospace so lines wrap predictably


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Draw a config's samples with their targets")
    parser.add_argument('config', help='config file path')
    parser.add_argument('--output-dir', required=True, help='folder for the PNGs (created)')
    parser.add_argument('--phase', choices=['train', 'val', 'test'], default='train',
                        help='which dataloader to browse (default: train)')
    parser.add_argument('--max', type=int, default=20, metavar='N',
                        help='draw at most N samples (default: 20)')
    add_cfg_options(parser)
    return parser.parse_args()


def pick(dataset, limit: int):
    """(name, sample) pairs; a mixture's parts round robin, so every task appears early."""
    parts = list(getattr(dataset, 'datasets', None) or [dataset])
    n = 0
    for j in range(max(len(p) for p in parts) if parts else 0):
        for part in parts:
            if n == limit:
                return
            if j < len(part):
                yield part[j]
                n += 1


def conversation_text(tokenizer, input_ids, labels) -> str:
    """The decoded conversation; runs of supervised tokens between « and », runs of image /
    video placeholders collapsed to ``<image_patch>×N``."""
    from ullava.models.tokens import IGNORE_INDEX, IMAGE_PATCH, VIDEO_PATCH
    vocab = tokenizer.get_vocab()
    placeholders = {vocab[t]: t for t in (IMAGE_PATCH, VIDEO_PATCH) if t in vocab}
    ids, labels = input_ids.tolist(), labels.tolist()
    pieces = []
    for (supervised, placeholder), run in groupby(
            zip(ids, labels), key=lambda t: (t[1] != IGNORE_INDEX, placeholders.get(t[0]))):
        run = [token for token, _ in run]
        text = f'{placeholder}×{len(run)}' if placeholder else \
            tokenizer.decode(run, skip_special_tokens=False)
        pieces.append(f'«{text}»' if supervised else text)
    return ''.join(pieces)


def with_panel(vis, image: np.ndarray, text: str) -> np.ndarray:
    """``image`` with ``text`` wrapped in a white panel under it."""
    width = image.shape[1]
    px = PANEL_FONT * vis.dpi / 72  # points -> pixels at the figure's dpi
    columns = max(20, int(width / (0.7 * px)))  # a monospace glyph is ~0.6 em wide, and a margin
    lines = [w for line in text.splitlines() for w in (textwrap.wrap(line, columns) or [''])]
    height = int(len(lines) * 1.25 * px) + 8
    canvas = np.concatenate([image, np.full((height, width, 3), 255, np.uint8)])
    vis.set_image(canvas)
    vis.draw_texts('\n'.join(lines), np.array([3, image.shape[0] + 3]), colors='black',
                   font_sizes=PANEL_FONT, font_families='monospace',
                   vertical_alignments='top', horizontal_alignments='left')
    return vis.get_image()


@cli_main
def main() -> None:
    args = parse_args()
    from mmengine.registry import init_default_scope

    from ullava.engine.hooks.visualization_hook import sample_canvas
    from ullava.models.language import build_tokenizer
    from ullava.registry import DATASETS
    from ullava.utils import install_compat
    from ullava.visualization import ULLaVAVisualizer, save_png
    install_compat()
    cfg = load_config(args.config, args.cfg_options)
    loader = cfg.get(f'{args.phase}_dataloader')
    if not loader or not loader.get('dataset'):
        raise UserError(f'{args.config} has no {args.phase}_dataloader.dataset to browse')
    init_default_scope(cfg.get('default_scope', 'ullava'))
    dataset = DATASETS.build(loader.dataset)
    tokenizer = build_tokenizer(**cfg.model.tokenizer)
    vis = ULLaVAVisualizer(name='browse_dataset')
    drawn = 0
    for n, packed in enumerate(pick(dataset, args.max)):
        sample, inputs = packed['data_samples'], packed['inputs']
        meta = sample.metainfo
        image = sample_canvas(meta)
        if image is None:  # a text-only sample: its conversation alone
            image = np.full((64, 256, 3), 255, np.uint8)
        stem = osp.splitext(osp.basename(meta.get('img_path') or meta.get('video_path')
                                         or 'text'))[0]
        name = f'{n:05d}_{meta.get("task", "sample")}_{stem}'
        text = conversation_text(tokenizer, inputs['input_ids'], inputs['labels'])
        picture = vis.add_datasample(name, image, sample, draw_gt=True, draw_pred=False)
        save_png(osp.join(args.output_dir, f'{name}.png'), with_panel(vis, picture, text))
        with open(osp.join(args.output_dir, f'{name}.txt'), 'w') as f:
            f.write(text + '\n')
        drawn += 1
    print(f'{drawn} {args.phase} samples drawn to {args.output_dir}')


if __name__ == '__main__':
    main()
