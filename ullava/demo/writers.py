"""Write the shapes world as files in the real annotation formats.

Layout under ``out_dir/<split>/`` (see :func:`generate_world`)::

    images/NNNNNN.png            RGB
    ade_labels/NNNNNN.png        uint8 label map, 0 background, CLASSES ids
    salient_masks/NNNNNN.png     uint8 0/255, only salient-eligible scenes
    videos/NNNNNN/frame_00.png.. frame folder, plus videos/NNNNNN.gif
    refcoco_<split>.json         u-LLaVA re-packed RefCOCO (RES and REC)
    llava_vqa_<split>.json       LLaVA-Instruct conversations
    vqa_<split>.json             VQAv2-like flat questions
    captions_<split>.json        COCO captions
    cc3m_chat_<split>.json       LLaVA CC3M chat.json
    semantic_<split>.json, semantic_classes.json
    salient_<split>.json
    tgif_<split>.json            LLaVA conversations over videos
    world_meta.json

Conventions:

* every path stored in any JSON is RELATIVE TO ``out_dir`` (the data root)
  and starts with the split, e.g. ``train/images/000000.png``.
* ``bbox`` is COCO ``[x, y, w, h]`` with ``w = x2 - x1 + 1`` over inclusive
  pixel indices, i.e. exactly ``pycocotools.mask.toBbox`` of the mask's RLE.
* ``segmentation`` is a COCO RLE of the VISIBLE mask, ``counts`` as str.
* ``image_id`` is the image's index within its split; ``ann_id`` is
  ``image_id * 10 + shape index``.
* seeds: item ``i`` of a split comes from
  ``default_rng([seed, split_id, stream_id, i])`` (train 0 / val 1, image 0 /
  video 1), so the same ``seed`` gives byte-identical files and val is
  held out from train.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ullava.demo import language as lang
from ullava.demo.world import (CLASSES, COLOURS, KINDS, NUM_FRAMES, SIZES, Scene, item_rng,
                               make_scene, make_video)

VERSION = 1
CAPTION_PROMPT = 'Give a brief description of the image.\n<image>'
VIDEO_PROMPT = '<video>\nDescribe the video.'
GIF_FRAME_MS = 125


def rle_of(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a bool mask, JSON-ready (``counts`` decoded to str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(v) for v in rle['size']], 'counts': rle['counts'].decode('ascii')}


def coco_bbox(box: tuple[int, int, int, int]) -> list[int]:
    """Inclusive xyxy -> COCO xywh (``w = x2 - x1 + 1``)."""
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1 + 1, y2 - y1 + 1]


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format='PNG')


def _dump(obj: Any, path: Path) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f)


class _SplitWriter:
    """Collects one split's records while its files are written."""

    def __init__(self, out_dir: Path, split: str) -> None:
        self.root, self.split = out_dir, split
        for sub in ('images', 'ade_labels', 'salient_masks', 'videos'):
            (out_dir / split / sub).mkdir(parents=True, exist_ok=True)
        self.refer: list[dict] = []
        self.llava: list[dict] = []
        self.vqa: list[dict] = []
        self.coco = {'images': [], 'annotations': [], 'type': 'captions'}
        self.cc3m: list[dict] = []
        self.semantic: list[dict] = []
        self.salient: list[dict] = []
        self.tgif: list[dict] = []

    def rel(self, *parts: str) -> str:
        """Path relative to out_dir (the data root), always with '/'."""
        return '/'.join((self.split,) + parts)

    def add_image(self, image_id: int, scene: Scene, rng: np.random.Generator) -> None:
        stem = f'{image_id:06d}'
        image_path = self.rel('images', stem + '.png')
        _save_png(scene.image, self.root / image_path)
        height, width = scene.image.shape[:2]
        for k, shape in enumerate(scene.shapes):
            sentences = lang.referring_expressions(scene, k, rng)
            if sentences:  # a shape with no unambiguous phrase is not referred to
                self.refer.append({
                    'image_path': image_path, 'height': height, 'width': width, 'sentences': sentences,
                    'category': shape.kind, 'bbox': coco_bbox(shape.box), 'segmentation': rle_of(shape.mask),
                    'image_id': image_id, 'ann_id': image_id * 10 + k})
        qa = lang.derive_qa(scene, rng)
        turns = []
        for j, (question, answer, answer_type) in enumerate(qa):
            turns.append({'from': 'human', 'value': ('<image>\n' if j == 0 else '') + question})
            turns.append({'from': 'gpt', 'value': answer})
            self.vqa.append({'question_id': image_id * 100 + j, 'image_id': image_id, 'image': image_path,
                             'question': question, 'answers': [answer] * 10, 'answer_type': answer_type})
        self.llava.append({'id': stem, 'image': image_path, 'conversations': turns})
        text = lang.caption(scene)
        self.coco['images'].append({'id': image_id, 'file_name': image_path, 'height': height, 'width': width})
        self.coco['annotations'].append({'id': image_id, 'image_id': image_id, 'caption': text})
        self.cc3m.append({'id': stem, 'image': image_path, 'conversations': [
            {'from': 'human', 'value': CAPTION_PROMPT}, {'from': 'gpt', 'value': text}]})
        self._add_semantic(stem, scene, image_path)
        self._add_salient(stem, scene, image_path)

    def _add_semantic(self, stem: str, scene: Scene, image_path: str) -> None:
        labels = np.zeros(scene.image.shape[:2], np.uint8)
        for shape in scene.shapes:
            labels[shape.mask] = shape.class_id
        label_path = self.rel('ade_labels', stem + '.png')
        _save_png(labels, self.root / label_path)
        present = sorted({s.class_id for s in scene.shapes})
        self.semantic.append({'image_path': image_path, 'label_path': label_path,
                              'classes': [{'class': CLASSES[c], 'class_id': c} for c in present]})

    def _add_salient(self, stem: str, scene: Scene, image_path: str) -> None:
        index = lang.salient_index(scene)
        if index is None:  # no clear winner: the scene is not used for salient
            return
        label_path = self.rel('salient_masks', stem + '.png')
        _save_png(scene.shapes[index].mask.astype(np.uint8) * 255, self.root / label_path)
        self.salient.append({'image_path': image_path, 'label_path': label_path,
                             'gpt': lang.salient_reason(scene, index)})

    def add_video(self, video_id: int, rng: np.random.Generator, image_size: int) -> None:
        video = make_video(rng, image_size)
        stem = f'{video_id:06d}'
        frame_dir = self.root / self.split / 'videos' / stem
        frame_dir.mkdir(exist_ok=True)
        for t, frame in enumerate(video.frames):
            _save_png(frame.image, frame_dir / f'frame_{t:02d}.png')
        gif_path = self.rel('videos', stem + '.gif')
        pics = [Image.fromarray(f.image) for f in video.frames]
        pics[0].save(self.root / gif_path, format='GIF', save_all=True, append_images=pics[1:],
                     duration=GIF_FRAME_MS, loop=0)
        self.tgif.append({'id': stem, 'video': gif_path, 'frame_dir': self.rel('videos', stem),
                          'conversations': [{'from': 'human', 'value': VIDEO_PROMPT},
                                            {'from': 'gpt', 'value': video.caption}]})

    def finish(self, meta: dict[str, Any]) -> None:
        split_dir, s = self.root / self.split, self.split
        files = {f'refcoco_{s}.json': self.refer, f'llava_vqa_{s}.json': self.llava, f'vqa_{s}.json': self.vqa,
                 f'captions_{s}.json': self.coco, f'cc3m_chat_{s}.json': self.cc3m,
                 f'semantic_{s}.json': self.semantic, 'semantic_classes.json': list(CLASSES),
                 f'salient_{s}.json': self.salient, f'tgif_{s}.json': self.tgif, 'world_meta.json': meta}
        for name, obj in files.items():
            _dump(obj, split_dir / name)


def generate_world(out_dir: str | os.PathLike, split: str = 'train', num_images: int = 200, num_videos: int = 20,
                   seed: int = 0, image_size: int = 64, progress: bool = False) -> dict[str, Any]:
    """Write one split of the world under ``out_dir/<split>/``; returns its ``world_meta.json`` content.

    The same arguments give byte-identical files. Paths inside the JSON files
    are relative to ``out_dir``.
    """
    if split not in ('train', 'val'):
        raise ValueError(f'split must be train or val, got {split!r}')
    writer = _SplitWriter(Path(out_dir), split)
    step = max(1, num_images // 4)
    for i in range(num_images):
        rng = item_rng(seed, split, 'image', i)
        writer.add_image(i, make_scene(rng, image_size), rng)
        if progress and (i + 1) % step == 0:
            print(f'{split}: {i + 1}/{num_images} images', flush=True)
    for v in range(num_videos):
        writer.add_video(v, item_rng(seed, split, 'video', v), image_size)
    meta = {
        'version': VERSION, 'seed': seed, 'split': split, 'image_size': image_size,
        'seed_rule': 'item i uses default_rng([seed, split_id, stream_id, i]); split_id train=0 val=1, '
                     'stream_id image=0 video=1',
        'path_root': 'all JSON paths are relative to out_dir',
        'bbox_convention': 'COCO [x, y, w, h], w = x2 - x1 + 1 over inclusive pixel indices (= mask.toBbox)',
        'classes': list(CLASSES), 'kinds': list(KINDS), 'sizes': list(SIZES),
        'colours': {name: list(rgb) for name, rgb in COLOURS.items()},
        'num_frames': NUM_FRAMES, 'relation_margin': lang.RELATION_MARGIN, 'salient_margin': lang.SALIENT_MARGIN,
        'counts': {'images': num_images, 'videos': num_videos, 'refer': len(writer.refer),
                   'vqa_questions': len(writer.vqa), 'captions': len(writer.coco['annotations']),
                   'semantic': len(writer.semantic), 'salient': len(writer.salient)},
    }
    writer.finish(meta)
    return meta
