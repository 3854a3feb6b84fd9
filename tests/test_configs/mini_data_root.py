"""A miniature ULLAVA_DATA_ROOT in the reference's layout, every file in the reference's shapes.

``image_root/`` is the u-LLaVA README's image tree (``coco2014/train2014``, ``ade20k/images``,
``vlpart/pascal-part``, ...) and ``annotations/`` holds the JSONs under the reference's names
(shared digest, "Annotation formats" and "Annotation file names"): RefCOCO-family records with
polygon and list-of-RLE ``segmentation``, ADE20K label maps before the zero-label reduction,
COCO-Stuff maps with a "-" class, PACO / PASCAL-Part ``classes`` strings with parallel COCO-style
``annotations``, salient masks with soft edges and ``gpt = {reason, tag}``, LLaVA conversations,
TGIF ``gif`` records. The evaluation files (RefCOCO splits, ADE20K / COCO-Stuff val, COCO
captions, VQAv2, DUTS-TE folders) follow docs/datasets.md. Images are 32 x 48 px.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

H, W = 32, 48
BOX = (8, 6, 24, 20)  # the object: x0, y0, x1, y1 (exclusive)
POLYGON = [[8.0, 6.0, 24.0, 6.0, 24.0, 20.0, 8.0, 20.0]]
BBOX = [8.0, 6.0, 16.0, 14.0]  # COCO xywh
OBJECT_PX = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])  # 224: what every object mask decodes to
FLOOR_PX = 8 * W  # the ADE20K "floor" region (rows 24..31)
REF_SPLITS = ['refcoco_val', 'refcoco_testA', 'refcoco_testB', 'refcoco+_val', 'refcoco+_testA',
              'refcoco+_testB', 'refcocog_val', 'refcocog_test']


def _object_mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    x0, y0, x1, y1 = BOX
    m[y0:y1, x0:x1] = 1
    return m


def _rle(mask: np.ndarray, compressed: bool = True) -> dict:
    """COCO RLE of ``mask``: compressed counts as a string (as the JSON files store it), or
    uncompressed counts as a list of run lengths."""
    if not compressed:  # run lengths in column-major order, starting with a run of 0s
        counts, value, run = [], 0, 0
        for v in mask.flatten(order='F').tolist():
            if v != value:
                counts.append(run)
                value, run = v, 0
            run += 1
        return dict(size=[H, W], counts=counts + [run])
    rle = mask_utils.encode(np.asfortranarray(mask))
    return dict(size=[H, W], counts=rle['counts'].decode())


def _write_image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(90, 140, (H, W, 3), dtype=np.uint8)
    x0, y0, x1, y1 = BOX
    img[y0:y1, x0:x1] = (200, 30, 30)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def _write_gif(path: Path, frames: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = []
    for t in range(frames):
        img = np.full((H, W, 3), 120, np.uint8)
        img[6:20, 2 + 3 * t:14 + 3 * t] = (200, 30, 30)
        images.append(Image.fromarray(img))
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _refer(image_path: str, segmentation: list, sentences: list[str]) -> dict:
    return dict(image_path=image_path, height=H, width=W, sentences=sentences,
                category='box', bbox=BBOX, segmentation=segmentation)


def _chat(question: str, answer: str) -> list[dict]:
    return [{'from': 'human', 'value': question}, {'from': 'gpt', 'value': answer}]


def write_data_root(root: Path) -> Path:
    img, ann = root / 'image_root', root / 'annotations'
    obj = _object_mask()
    halves = obj.copy(), obj.copy()
    halves[0][:, 16:], halves[1][:, :16] = 0, 0  # two RLE parts, summed into one mask

    # -- RefCOCO family (images of COCO train2014, RefCLEF's saiapr_tc-12) ------------------
    coco14 = 'train2014/COCO_train2014_000000000001.jpg'
    _write_image(img / 'coco2014' / coco14, 1)
    _write_image(img / 'saiapr_tc-12/00/images/25.jpg', 2)
    _write_json(ann / 'refcoco_train.json', [_refer(coco14, POLYGON, ['red box', 'the box'])])
    _write_json(ann / 'refcoco+_train.json', [_refer(coco14, [_rle(obj)], ['red thing'])])
    _write_json(ann / 'refcocog_train.json',
                [_refer(coco14, [_rle(halves[0]), _rle(halves[1])], ['a red box on grey'])])
    _write_json(ann / 'refclef_train.json', [_refer('00/images/25.jpg', POLYGON, ['box'])])
    for i, split in enumerate(REF_SPLITS):
        seg = POLYGON if i % 2 else [_rle(obj)]
        _write_json(ann / f'{split}.json', [_refer(coco14, seg, ['red box', 'box on the left'])])

    # -- LLaVA conversations: instruct-150K (coco2017), CC3M chat.json, TGIF gifs ----------
    _write_image(img / 'coco2017/train2017/000000000003.jpg', 3)
    _write_json(ann / 'llava_instruct_150k.json', [dict(
        id='000000000003', image='000000000003.jpg',
        conversations=_chat('What is in the image?\n<image>', 'A red box on a grey wall.'))])
    _write_image(img / 'LLaVA-CC3M-Pretrain-595K/images/GCC_train_000000001.jpg', 4)
    _write_json(ann / 'chat.json', [dict(
        id='GCC_train_000000001', image='GCC_train_000000001.jpg',
        conversations=_chat('<image>\nGive a brief description of the image.', 'a red box'))])
    _write_gif(img / 'TGIF/GIFs/tumblr_0001.gif')
    _write_json(ann / 'tgif_llava.json', [dict(
        gif='tumblr_0001.gif', conversations=_chat('Describe the video.', 'a red box moves'))])

    # -- semantic label maps: ADE20K (raw: 0 other, k = class k-1), COCO-Stuff (raw ids) ----
    ade = np.zeros((H, W), np.uint8)
    ade[obj > 0], ade[H - FLOOR_PX // W:, :] = 1, 4  # wall (class_id 0), floor (3)
    for split, name in (('training', 'ADE_train_00000001'), ('validation', 'ADE_val_00000001')):
        _write_image(img / f'ade20k/images/{split}/{name}.jpg', 5)
        _write_png(img / f'ade20k/annotations/{split}/{name}.png', ade)
        _write_json(ann / ('ade20k.json' if split == 'training' else 'ade20k_val.json'), [dict(
            image_path=f'images/{split}/{name}.jpg', label_path=f'annotations/{split}/{name}.png',
            classes=[{'class': 'wall', 'class_id': 0}, {'class': 'floor', 'class_id': 3}])])
    stuff = np.full((H, W), 255, np.uint8)
    stuff[obj > 0], stuff[H - FLOOR_PX // W:, :] = 0, 95  # person; building-other ("-")
    for split, stem in (('train2017', '000000000006'), ('val2017', '000000000007')):
        _write_image(img / f'coco2017/{split}/{stem}.jpg', 6)
        _write_png(img / f'cocostuff/{split}/{stem}.png', stuff)
        _write_json(ann / ('cocostuff.json' if split == 'train2017' else 'cocostuff_val.json'),
                    [dict(image_path=f'coco2017/{split}/{stem}.jpg',
                          label_path=f'cocostuff/{split}/{stem}.png',
                          classes=[{'class': 'person', 'class_id': 0},
                                   {'class': 'building-other', 'class_id': 95}])])

    # -- object parts: class-name strings + parallel COCO-style annotations ----------------
    part = dict(height=H, width=W, bbox=BBOX)
    voc = 'pascal-part/VOCdevkit/VOC2010/JPEGImages/2008_000002.jpg'
    _write_image(img / 'vlpart' / voc, 7)
    _write_json(ann / 'pascal_part.json', [dict(
        image_path=voc, classes=['aeroplane:body', 'aeroplane:wing'],
        annotations=[dict(part, segmentation=POLYGON),
                     dict(part, segmentation=_rle(halves[0], compressed=False))])])
    _write_json(ann / 'paco_lvis.json', [dict(
        image_path='train2017/000000000003.jpg', classes=['basket'],
        annotations=[dict(part, segmentation=_rle(obj))])])

    # -- salient: masks are 255 inside, soft (128) on a 1-px edge; gpt = {reason, tag} -------
    soft = obj * 255
    soft[BOX[1] - 1, BOX[0]:BOX[2]] = 128
    for folder, stem in (('MSRA10K_Imgs_GT/Imgs', '75'), ('MSRA-B', '0_0_547')):
        _write_image(img / f'{folder}/{stem}.jpg', 8)
        _write_png(img / f'{folder}/{stem}.png', soft)
    for name, folder, stem in (('MSRA-10K', 'MSRA10K_Imgs_GT/Imgs', '75'),
                               ('MSRA-B', 'MSRA-B', '0_0_547')):
        _write_json(ann / f'{name}.json', [dict(
            image_path=f'{folder}/{stem}.jpg', label_path=f'{folder}/{stem}.png',
            gpt=dict(reason='It is the only red object.', tag='box'))])
    _write_image(img / 'DUTS-TE/DUTS-TE-Image/ILSVRC2012_test_00000003.jpg', 9)
    _write_png(img / 'DUTS-TE/DUTS-TE-Mask/ILSVRC2012_test_00000003.png', soft)

    # -- COCO captions (COCO's own file) and VQAv2 (one record per question) ---------------
    _write_image(img / 'coco2017/val2017/000000000004.jpg', 10)
    _write_json(img / 'coco2017/annotations/captions_val2017.json', dict(
        info={}, licenses=[],
        images=[dict(id=4, file_name='000000000004.jpg', height=H, width=W)],
        annotations=[dict(id=1, image_id=4, caption='A red box on a grey wall.'),
                     dict(id=2, image_id=4, caption='A small red square.')]))
    _write_image(img / 'coco2014/val2014/COCO_val2014_000000000002.jpg', 11)
    _write_json(ann / 'vqav2_val.json', [dict(
        question_id=2001, image='COCO_val2014_000000000002.jpg', question='What colour is the box?',
        answers=[dict(answer=a, answer_confidence='yes', answer_id=i + 1)
                 for i, a in enumerate(['red'] * 8 + ['orange'] * 2)])])
    return root
