"""Write a pointing JSON for a split of the procedural shapes world (ullava.demo).

One record per (colour, kind) group of an image ("point to the red circles"): each visible
shape of the group gives one point (the pixel of its mask nearest to its mask's centroid, so
the point is on the object even when another shape covers part of it) and its mask (RLE).
Scenes are rebuilt from their seed as ``projects/instance_seg``'s converter does.

    python -m projects.pointing.pointing.convert_world DATA_ROOT [--split val]

writes ``DATA_ROOT/<split>/pointing_<split>.json``; ``image`` is relative to DATA_ROOT.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ullava.demo.world import item_rng, make_scene
from ullava.demo.writers import rle_of
from ullava.utils import UserError


def point_on(mask: np.ndarray) -> list[float]:
    """The pixel centre of ``mask`` nearest to its centroid, as (x, y)."""
    ys, xs = np.nonzero(mask)
    k = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
    return [float(xs[k]) + 0.5, float(ys[k]) + 0.5]


def world_to_pointing(data_root: str | Path, split: str, max_points: int = 6) -> list[dict]:
    root = Path(data_root)
    meta_file = root / split / 'world_meta.json'
    if not meta_file.is_file():
        raise UserError(f'{meta_file} not found: write the world first '
                        f'(python -m ullava.demo.world)')
    meta = json.loads(meta_file.read_text())
    records = []
    for i in range(meta['counts']['images']):
        scene = make_scene(item_rng(meta['seed'], split, 'image', i), meta['image_size'])
        groups: dict = defaultdict(list)
        for shape in scene.shapes:
            if shape.mask.any():
                groups[(shape.colour, shape.kind)].append(shape)
        height, width = scene.image.shape[:2]
        for (colour, kind), shapes in sorted(groups.items()):
            shapes = sorted(shapes, key=lambda s: (s.box[0], s.box[1]))[:max_points]
            records.append(dict(image=f'{split}/images/{i:06d}.png', height=height, width=width,
                                image_id=i, target=f'{colour} {kind}',
                                points=[point_on(s.mask) for s in shapes],
                                segmentations=[rle_of(s.mask) for s in shapes]))
    return records


def write_pointing(data_root: str | Path, split: str) -> Path:
    out = Path(data_root) / split / f'pointing_{split}.json'
    out.write_text(json.dumps(world_to_pointing(data_root, split)))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root')
    parser.add_argument('--split', nargs='+', default=['train', 'val'])
    args = parser.parse_args(argv)
    for split in args.split:
        print(f'wrote {write_pointing(args.data_root, split)}')


if __name__ == '__main__':
    main()
