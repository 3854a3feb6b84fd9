"""Write gRefCOCO-format files for the procedural shapes world (ullava.demo): COCO
``instances.json`` and ``grefs(unc).json`` with expressions of several targets ("all the
circles", "every red shape") and of none (a kind or colour the image does not have).

    python -m projects.grefcoco.grefcoco.convert_world DATA_ROOT [--split train val]

writes ``DATA_ROOT/grefcoco/instances.json`` and ``DATA_ROOT/grefcoco/grefs(unc).json`` (refs
of all the given splits, each ref's ``split`` set).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from ullava.demo.world import COLOURS, KINDS, CLASSES, item_rng, make_scene
from ullava.demo.writers import coco_bbox, rle_of
from ullava.utils import UserError


def world_to_grefcoco(data_root: str | Path, splits: Sequence[str]) -> tuple[dict, list]:
    root = Path(data_root)
    images, annotations, refs = [], [], []
    for split in splits:
        meta_file = root / split / 'world_meta.json'
        if not meta_file.is_file():
            raise UserError(f'{meta_file} not found: write the world first '
                            f'(python -m ullava.demo.world)')
        meta = json.loads(meta_file.read_text())
        for i in range(meta['counts']['images']):
            scene = make_scene(item_rng(meta['seed'], split, 'image', i), meta['image_size'])
            image_id = len(images)
            h, w = scene.image.shape[:2]
            images.append(dict(id=image_id, file_name=f'{split}/images/{i:06d}.png',
                               height=h, width=w))
            by_kind: dict = {k: [] for k in KINDS}
            by_colour: dict = {c: [] for c in COLOURS}
            for shape in scene.shapes:
                if not shape.mask.any():
                    continue
                ann_id = len(annotations) + 1
                annotations.append(dict(id=ann_id, image_id=image_id,
                                        category_id=CLASSES.index(shape.kind),
                                        segmentation=rle_of(shape.mask),
                                        bbox=coco_bbox(shape.box), area=int(shape.mask.sum()),
                                        iscrowd=0))
                by_kind[shape.kind].append(ann_id)
                by_colour[shape.colour].append(ann_id)
            groups = [(f'all the {k}s', ids) for k, ids in by_kind.items()] + \
                [(f'every {c} shape', ids) for c, ids in by_colour.items()]
            present = [g for g in groups if g[1]]
            absent = [g for g in groups if not g[1]][:1]  # one no-target expression per image
            present.sort(key=lambda g: -len(g[1]))  # several targets first: gRefCOCO's point
            for sent, ids in present[:3] + absent:
                refs.append(dict(ref_id=len(refs), image_id=image_id, split=split,
                                 ann_id=ids or [-1], no_target=not ids,
                                 sentences=[dict(sent=sent, raw=sent, sent_id=len(refs))]))
    categories = [dict(id=c, name=n) for c, n in enumerate(CLASSES) if c > 0]
    return dict(images=images, annotations=annotations, categories=categories), refs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root')
    parser.add_argument('--split', nargs='+', default=['train', 'val'])
    args = parser.parse_args(argv)
    coco, refs = world_to_grefcoco(args.data_root, args.split)
    out = Path(args.data_root) / 'grefcoco'
    out.mkdir(exist_ok=True)
    (out / 'instances.json').write_text(json.dumps(coco))
    (out / 'grefs(unc).json').write_text(json.dumps(refs))
    print(f'wrote {out}: {len(refs)} refs, {len(coco["annotations"])} instances')


if __name__ == '__main__':
    main()
