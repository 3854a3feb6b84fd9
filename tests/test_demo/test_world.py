"""The procedural world: determinism, and files that agree with the scenes they describe.

Scenes are rebuilt from the seed (``item_rng`` + ``make_scene``) and the
checks below use their own small matcher, not ``ullava.demo.language``.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from ullava.demo import Scene, generate_world, render_scene
from ullava.demo.world import COLOURS, KINDS, NUM_FRAMES, ShapeSpec, item_rng, make_background, make_scene

SEED = 7
SIZE = 64
EXPR = re.compile(r'^the (?:(small|large) )?(?:(red|green|blue|yellow) )?(circle|square|triangle|star|shape)'
                  r'(?: (on the left|on the right|at the top|at the bottom)| (left of|right of|above|below) (the .*))?$')
# pycocotools' decode trips a numpy-2 deprecation that is not ours to fix.
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')
KEYS = {
    'refcoco': {'image_path', 'height', 'width', 'sentences', 'category', 'bbox', 'segmentation', 'image_id', 'ann_id'},
    'llava_vqa': {'id', 'image', 'conversations'},
    'vqa': {'question_id', 'image', 'question', 'answers', 'answer_type'},
    'cc3m_chat': {'id', 'image', 'conversations'},
    'semantic': {'image_path', 'label_path', 'classes'},
    'salient': {'image_path', 'label_path', 'gpt'},
    'tgif': {'id', 'video', 'conversations'},
}


def _all_files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def _write(root: Path, seed: int, n_img: int, n_vid: int) -> Path:
    generate_world(root, 'train', num_images=n_img, num_videos=n_vid, seed=seed, image_size=SIZE)
    generate_world(root, 'val', num_images=max(1, n_img // 2), num_videos=1, seed=seed, image_size=SIZE)
    return root


@pytest.fixture(scope='module')
def world(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp('world'), SEED, 24, 3)


def _load(world: Path, name: str, split: str = 'train'):
    return json.loads((world / split / f'{name}_{split}.json').read_text())


def _scene(split: str, image_id: int) -> Scene:
    return make_scene(item_rng(SEED, split, 'image', image_id), SIZE)


def _resolve(text: str, scene: Scene) -> list:
    """Independent reading of a referring expression: indices of the shapes it fits."""
    m = EXPR.match(text)
    assert m, text
    size, colour, kind, position, relation, anchor_text = m.groups()
    margin = 0.08 * SIZE
    hits = [i for i, s in enumerate(scene.shapes)
            if (size is None or s.size == size) and (colour is None or s.colour == colour)
            and (kind == 'shape' or s.kind == kind)]

    def beyond(rel, a, b):
        (ax, ay), (bx, by) = a.centre, b.centre
        return {'left of': ax < bx - margin, 'right of': ax > bx + margin,
                'above': ay < by - margin, 'below': ay > by + margin}[rel]

    if position:
        rel = {'on the left': 'left of', 'on the right': 'right of', 'at the top': 'above',
               'at the bottom': 'below'}[position]
        return [i for i in hits if all(beyond(rel, scene.shapes[i], scene.shapes[j]) for j in hits if j != i)]
    if relation:
        anchors = _resolve(anchor_text, scene)
        if len(anchors) != 1:
            return []
        return [i for i in hits if i != anchors[0] and beyond(relation, scene.shapes[i], scene.shapes[anchors[0]])]
    return hits


def test_determinism(tmp_path):
    a = _all_files(_write(tmp_path / 'a', 3, 6, 1))
    b = _all_files(_write(tmp_path / 'b', 3, 6, 1))
    c = _all_files(_write(tmp_path / 'c', 4, 6, 1))
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert any(a[k] != c.get(k) for k in a if k.endswith('.png'))
    assert a['train/refcoco_train.json'] != c['train/refcoco_train.json']


def test_val_is_held_out(world):
    train = {p.read_bytes() for p in (world / 'train' / 'images').glob('*.png')}
    val = {p.read_bytes() for p in (world / 'val' / 'images').glob('*.png')}
    assert train and val and not train & val


def test_json_files_have_documented_keys(world):
    for split in ('train', 'val'):
        for name, keys in KEYS.items():
            records = _load(world, name, split)
            assert records, name
            assert all(keys <= set(r) for r in records), name
        coco = _load(world, 'captions', split)
        assert set(coco) == {'images', 'annotations', 'type'} and coco['type'] == 'captions'
        assert {'id', 'file_name', 'height', 'width'} <= set(coco['images'][0])
        assert {'id', 'image_id', 'caption'} <= set(coco['annotations'][0])
        classes = json.loads((world / split / 'semantic_classes.json').read_text())
        assert classes == ['background'] + list(KINDS)
        meta = json.loads((world / split / 'world_meta.json').read_text())
        assert meta['split'] == split and meta['seed'] == SEED and meta['image_size'] == SIZE
        for rec in _load(world, 'llava_vqa', split) + _load(world, 'cc3m_chat', split):
            assert (world / rec['image']).is_file()  # paths are relative to out_dir


def test_scene_rebuilds_from_seed_and_colours_match_masks(world):
    for image_id in range(24):
        scene = _scene('train', image_id)
        image = np.asarray(Image.open(world / 'train' / 'images' / f'{image_id:06d}.png'))
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
        assert np.array_equal(image, scene.image)
        for colour, rgb in COLOURS.items():
            painted = np.all(image == rgb, axis=-1)  # no anti-aliasing: exact colours
            union = np.zeros_like(painted)
            for s in scene.shapes:
                if s.colour == colour:
                    union |= s.mask
            assert np.array_equal(painted, union), colour


def test_refcoco_masks_boxes_and_expressions(world):
    records = _load(world, 'refcoco')
    assert records
    for rec in records:
        scene = _scene('train', rec['image_id'])
        shape = scene.shapes[rec['ann_id'] % 10]
        rle = dict(rec['segmentation'], counts=rec['segmentation']['counts'].encode())
        mask = mask_utils.decode(rle).astype(bool)
        assert np.array_equal(mask, shape.mask) and rec['category'] == shape.kind
        image = np.asarray(Image.open(world / rec['image_path']))
        assert np.all(image[mask] == COLOURS[shape.colour])
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max(), ys.max()
        assert rec['bbox'] == [x1, y1, x2 - x1 + 1, y2 - y1 + 1]  # inclusive-pixel convention
        assert rec['bbox'] == mask_utils.toBbox(rle).astype(int).tolist()
        assert 1 <= len(rec['sentences']) <= 3
        for sentence in rec['sentences']:
            assert _resolve(sentence, scene) == [rec['ann_id'] % 10], sentence
        if sum((s.kind, s.colour) == (shape.kind, shape.colour) for s in scene.shapes) > 1:
            assert f'the {shape.colour} {shape.kind}' not in rec['sentences']


def test_qa_answers_are_exact(world):
    seen = set()
    for rec in _load(world, 'vqa'):
        scene, q, a = _scene('train', rec['image_id']), rec['question'], rec['answers'][0]
        assert rec['answers'] == [a] * 10
        shapes = scene.shapes
        if q == 'How many shapes are there?':
            assert a == str(len(shapes))
        elif m := re.fullmatch(r'How many (\w+)s are there\?', q):
            assert a == str(sum(s.kind == m[1] for s in shapes))
        elif m := re.fullmatch(r'Is there a (\w+) (\w+)\?', q):
            assert a == ('yes' if any((s.colour, s.kind) == m.groups() for s in shapes) else 'no')
        elif m := re.fullmatch(r'What colour is the (\w+)\?', q):
            (only,) = [s for s in shapes if s.kind == m[1]]
            assert a == only.colour
        elif m := re.fullmatch(r'What shape is the (\w+) object\?', q):
            (only,) = [s for s in shapes if s.colour == m[1]]
            assert a == only.kind
        elif m := re.fullmatch(r'Is (the .+) small or large\?', q):
            (i,) = _resolve(m[1], scene)
            assert a == shapes[i].size
        elif m := re.fullmatch(r'Is (the .+) (left or right of|above or below) (the .+)\?', q):
            (i,), (j,) = _resolve(m[1], scene), _resolve(m[3], scene)
            axis = 0 if m[2].startswith('left') else 1
            before = shapes[i].centre[axis] < shapes[j].centre[axis]
            assert a == {0: ('left', 'right'), 1: ('above', 'below')}[axis][not before]
        else:
            pytest.fail(f'unchecked question {q!r}')
        seen.add(q.split()[0])
    conversations = _load(world, 'llava_vqa')
    assert len(conversations) == 24 and seen >= {'How', 'Is', 'What'}
    for rec in conversations:
        turns = rec['conversations']
        assert turns[0]['value'].startswith('<image>\n') and [t['from'] for t in turns[:2]] == ['human', 'gpt']


def test_captions_list_every_shape(world):
    coco = _load(world, 'captions')
    for ann in coco['annotations']:
        scene = _scene('train', ann['image_id'])
        for s in scene.shapes:
            assert f'{s.size} {s.colour} {s.kind}' in ann['caption']
        assert ann['caption'].endswith(f'on a {scene.background} background')


def test_semantic_label_maps(world):
    for rec in _load(world, 'semantic'):
        image_id = int(Path(rec['image_path']).stem)
        scene = _scene('train', image_id)
        labels = np.asarray(Image.open(world / rec['label_path']))
        assert labels.dtype == np.uint8 and labels.ndim == 2
        for class_id, kind in enumerate(KINDS, start=1):
            union = np.zeros(labels.shape, bool)
            for s in scene.shapes:
                if s.kind == kind:
                    union |= s.mask
            assert np.array_equal(labels == class_id, union), kind
        assert sorted(c['class_id'] for c in rec['classes']) == sorted({KINDS.index(s.kind) + 1 for s in scene.shapes})


def test_salient_mask_is_the_largest_shape(world):
    records = _load(world, 'salient')
    assert records
    for rec in records:
        scene = _scene('train', int(Path(rec['image_path']).stem))
        mask = np.asarray(Image.open(world / rec['label_path']))
        assert set(np.unique(mask)) <= {0, 255}
        areas = sorted((s.area for s in scene.shapes), reverse=True)
        largest = max(scene.shapes, key=lambda s: s.area)
        assert np.array_equal(mask == 255, largest.mask)
        assert len(areas) == 1 or areas[0] >= 1.5 * areas[1]
        assert f'{largest.size} {largest.colour} {largest.kind}' in rec['gpt']


def test_videos_have_eight_frames(world):
    for split in ('train', 'val'):
        records = _load(world, 'tgif', split)
        for rec in records:
            frames = sorted((world / rec['frame_dir']).glob('frame_*.png'))
            assert [f.name for f in frames] == [f'frame_{t:02d}.png' for t in range(NUM_FRAMES)]
            pics = [np.asarray(Image.open(f)) for f in frames]
            assert all(p.shape == (SIZE, SIZE, 3) for p in pics)
            assert not np.array_equal(pics[0], pics[-1])  # something moved
            gif = Image.open(world / rec['video'])
            assert gif.n_frames == NUM_FRAMES
            assert rec['conversations'][0]['value'] == '<video>\nDescribe the video.'
            assert ' moves ' in rec['conversations'][1]['value']


def test_render_scene_keeps_only_visible_pixels():
    _, bg = make_background(np.random.default_rng(0), SIZE)
    back = ShapeSpec('square', 'red', 'large', (30.0, 30.0), 10.0)
    front = ShapeSpec('circle', 'blue', 'small', (38.0, 30.0), 6.0)
    scene = render_scene([back, front], bg, 'noisy')
    red, blue = scene.shapes
    assert not (red.mask & blue.mask).any()
    assert np.all(scene.image[red.mask] == COLOURS['red']) and np.all(scene.image[blue.mask] == COLOURS['blue'])
    assert red.area < (2 * int(0.9 * 10) + 1) ** 2  # part of the square is hidden
