"""Write a COCO instances JSON for a split of the procedural shapes world (ullava.demo).

The world's writers store referred shapes and label maps, not every instance, so we rebuild each
scene from its seed (``world_meta.json`` holds it; item i of a split comes from
``item_rng(seed, split, 'image', i)``) and check it against the written image before using it.

    python -m projects.instance_seg.instance_seg.convert_world DATA_ROOT [--split val]

writes ``DATA_ROOT/<split>/instances_<split>.json``; ``file_name`` is relative to DATA_ROOT.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ullava.demo.world import CLASSES, item_rng, make_scene
from ullava.demo.writers import coco_bbox, rle_of
from ullava.utils import UserError


def world_to_coco(data_root: str | Path, split: str) -> dict:
    """The COCO instances dict of one split; categories are the world's kinds (ids 1..4)."""
    root = Path(data_root)
    meta_file = root / split / 'world_meta.json'
    if not meta_file.is_file():
        raise UserError(f'{meta_file} not found: write the world first (python -m ullava.demo.world)')
    meta = json.loads(meta_file.read_text())
    images, annotations = [], []
    for i in range(meta['counts']['images']):
        scene = make_scene(item_rng(meta['seed'], split, 'image', i), meta['image_size'])
        file_name = f'{split}/images/{i:06d}.png'
        with Image.open(root / file_name) as written:
            if not np.array_equal(np.asarray(written.convert('RGB')), scene.image):
                raise UserError(f'{root / file_name} differs from the scene rebuilt from its seed: '
                                f'the world was written by another version of ullava.demo')
        height, width = scene.image.shape[:2]
        images.append(dict(id=i, file_name=file_name, height=height, width=width))
        for k, shape in enumerate(scene.shapes):
            annotations.append(dict(
                id=i * 10 + k + 1,  # the world's ann_id + 1: COCO's evaluation wants ids > 0
                image_id=i, category_id=shape.class_id, segmentation=rle_of(shape.mask),
                bbox=coco_bbox(shape.box), area=shape.area, iscrowd=0))
    categories = [dict(id=c, name=name, supercategory='shape')
                  for c, name in enumerate(CLASSES) if c > 0]
    return dict(images=images, annotations=annotations, categories=categories)


def write_instances(data_root: str | Path, split: str) -> Path:
    """Write ``<data_root>/<split>/instances_<split>.json``; return its path."""
    out = Path(data_root) / split / f'instances_{split}.json'
    out.write_text(json.dumps(world_to_coco(data_root, split)))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root')
    parser.add_argument('--split', nargs='+', default=['train', 'val'])
    args = parser.parse_args(argv)
    for split in args.split:
        print(f'wrote {write_instances(args.data_root, split)}')


if __name__ == '__main__':
    main()
