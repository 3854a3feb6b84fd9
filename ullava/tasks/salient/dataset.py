"""Salient object segmentation.

:class:`SalientDataset` reads the reference's JSON records (MSRA-10K, MSRA-B):
``{"image_path", "label_path" (binary mask PNG), "gpt" (why it is salient)}``.
:class:`SalientFolderDataset` reads plain image/mask folder pairs (DUTS-style) for evaluation:
``<img_dir>/<name>.jpg|png`` with ``<mask_dir>/<name>.png``.
"""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path

from ullava.datasets.base import ULLaVADataset
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates, pick
from ullava.utils import UserError

TEMPLATES = str(Path(__file__).with_name('templates.json'))
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


@DATASETS.register_module()
class SalientDataset(ULLaVADataset):

    def __init__(self, *args, task: str = 'salient', templates: str = TEMPLATES, **kwargs) -> None:
        self.templates = load_templates(templates)
        super().__init__(*args, task=task, **kwargs)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        reason = record.get('gpt')
        if reason is not None and not isinstance(reason, str):
            raise UserError(f'{self.ann_file} record {index}: field "gpt" should be a string')
        return [dict(img_path=self.media_path(record, 'image_path', index),
                     mask_anns=[dict(mask_path=self.media_path(record, 'label_path', index))],
                     reason=reason, img_id=record.get('id', index))]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        question = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
        answer = self.templates['answer'].format(info['reason']) if info.get('reason') \
            else self.templates['answer_no_reason']
        info['conversations'] = [{'from': 'human', 'value': question},
                                 {'from': 'gpt', 'value': answer}]
        return info


@DATASETS.register_module()
class SalientFolderDataset(SalientDataset):
    """``ann_file`` is unused: pairs come from ``img_dir`` and ``mask_dir`` (under data_root)."""

    def __init__(self, img_dir: str, mask_dir: str, *args, **kwargs) -> None:
        self.img_dir, self.mask_dir = img_dir, mask_dir
        kwargs.setdefault('ann_file', '')
        super().__init__(*args, **kwargs)

    def read_annotations(self) -> list:
        img_dir = osp.join(self.data_root, self.img_dir)
        mask_dir = osp.join(self.data_root, self.mask_dir)
        for folder in (img_dir, mask_dir):
            if not osp.isdir(folder):
                raise UserError(f'SalientFolderDataset: folder not found: {folder}')
        self.ann_file = img_dir
        records = []
        for name in sorted(os.listdir(img_dir)):
            stem, suffix = osp.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES:
                records.append(dict(image_path=osp.join(img_dir, name), id=stem,
                                    label_path=osp.join(mask_dir, stem + '.png')))
        return records
