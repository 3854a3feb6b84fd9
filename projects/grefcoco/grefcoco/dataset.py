"""gRefCOCO in its released format: ``grefs(unc).json`` (a list of refs) with COCO's
``instances.json``.

A ref: ``{ref_id, image_id, ann_id: [ids] ([-1] for none), no_target: bool, split,
sentences: [{sent, ...}]}``. One sample per sentence of the refs of ``split``; the answer holds
one ``[SEG]`` per target (``mask_anns`` in ``ann_id`` order), or ``[REJ]`` alone when the
expression matches nothing (GSVA's answer).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ullava.datasets.base import ULLaVADataset
from ullava.registry import DATASETS
from ullava.tasks.templates import pick
from ullava.utils import UserError

QUESTIONS = ['<image>\nPlease segment {} in this image.', '<image>\nCan you segment {}?',
             '<image>\nWhat is {} in this image? Please output segmentation masks.']
TARGET_ANSWER = 'Sure, {}.'
REJECT_ANSWER = 'Sorry, there is no such object. [REJ]'


@DATASETS.register_module()
class GRefCOCODataset(ULLaVADataset):
    """Args:
        ann_file: ``grefs(unc).json``.
        instances_file: COCO ``instances.json`` holding the refs' images and annotations
            (relative to ``data_root``); ``file_name`` is relative to ``data_root``.
        split: the refs' ``split`` to keep.
    Other arguments as :class:`ullava.datasets.ULLaVADataset`.
    """

    def __init__(self, *args, instances_file: str, split: str = 'val', task: str = 'grefcoco',
                 **kwargs: Any) -> None:
        self.instances_file, self.split = instances_file, split
        super().__init__(*args, task=task, **kwargs)

    def records(self, refs: Any) -> list[dict]:
        if not isinstance(refs, list):
            raise UserError(f'{self.ann_file}: expected a list of refs (gRefCOCO grefs JSON)')
        path = Path(self.data_root) / self.instances_file
        if not path.is_file():
            raise UserError(f'GRefCOCODataset.instances_file: {path} not found')
        coco = json.loads(path.read_text())
        self.images = {img['id']: img for img in coco.get('images', [])}
        self.anns = {ann['id']: ann for ann in coco.get('annotations', [])}
        return [r for r in refs if not isinstance(r, dict) or r.get('split') == self.split]

    def parse_record(self, record: dict, index: int) -> list[dict]:
        where = f'{self.ann_file} record {index}'
        image = self.images.get(self.require(record, 'image_id', index, int))
        if image is None:
            raise UserError(f'{where}: field "image_id" {record["image_id"]} is not in '
                            f'{self.instances_file}')
        img_path = self.media_path(image, 'file_name', index)
        ann_ids = [a for a in self.require(record, 'ann_id', index, list) if a != -1]
        if bool(record.get('no_target')) != (not ann_ids):
            raise UserError(f'{where}: field "no_target" disagrees with "ann_id" {ann_ids}')
        missing = [a for a in ann_ids if a not in self.anns]
        if missing:
            raise UserError(f'{where}: field "ann_id" {missing} not in {self.instances_file}')
        anns = [dict(segmentation=self.anns[a]['segmentation'], height=image.get('height'),
                     width=image.get('width')) for a in ann_ids]
        sentences = self.require(record, 'sentences', index, list)
        return [dict(img_path=img_path, img_id=image['id'], ref_id=record.get('ref_id', index),
                     expression=self.require(s, 'sent', index, str, where=f'{where} sentence'),
                     mask_anns=anns) for s in sentences]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        question = pick(QUESTIONS, self.test_mode, QUESTIONS[0], self.sample_rng(idx))
        n = len(info['mask_anns'])
        answer = TARGET_ANSWER.format(', '.join(['[SEG]'] * n)) if n else REJECT_ANSWER
        info['conversations'] = [{'from': 'human', 'value': question.format(info['expression'])},
                                 {'from': 'gpt', 'value': answer}]
        return info
