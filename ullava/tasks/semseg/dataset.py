"""Semantic segmentation from label maps: ADE20K, COCO-Stuff, PASCAL-Part, PACO-LVIS as u-LLaVA
uses them. Records: ``{"image_path", "label_path", "classes": [{"class", "class_id"}]}``; the
target of a class is the pixels equal to its id.

A sample asks for several classes at once ("Can you segment the circle, square in this image?"
-> "Sure. circle: [SEG]; square: [SEG].") so one forward pass yields a mask per class, from which
the metric assembles the full label map for mIoU.
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path
from typing import Sequence

import numpy as np

from ullava.datasets.base import ULLaVADataset
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates, pick
from ullava.utils import UserError

TEMPLATES = str(Path(__file__).with_name('templates.json'))


@DATASETS.register_module()
class SemanticSegDataset(ULLaVADataset):
    """Args:
        class_names: every class name, indexed by its label value (or a JSON file of that list).
        prompt_classes: ``'present'`` (classes listed in the record) or ``'all'`` (every class
            but the ``ignore_ids``; absent ones get empty masks -- teaches "not here").
        max_prompts: at most this many classes per sample (a seeded random subset in training).
        ignore_ids: label values never prompted and ignored by the metric (e.g. ADE's 0).
        background_id: the label value of pixels no prompted class claims (None: ignore them).
    """

    def __init__(self, *args, class_names: Sequence[str] | str, prompt_classes: str = 'present',
                 max_prompts: int = 8, ignore_ids: Sequence[int] = (), background_id: int | None = 0,
                 task: str = 'semseg', templates: str = TEMPLATES, **kwargs) -> None:
        self.templates = load_templates(templates)
        data_root = kwargs.get('data_root', '')
        if isinstance(class_names, str):
            path = class_names if osp.isabs(class_names) else osp.join(data_root, class_names)
            if not osp.isfile(path):
                raise UserError(f'SemanticSegDataset: class_names file not found: {path}')
            class_names = load_templates(path)  # a JSON list
        self.class_names = list(class_names)
        if prompt_classes not in ('present', 'all'):
            raise UserError(f"prompt_classes must be 'present' or 'all', got {prompt_classes!r}")
        self.prompt_classes, self.max_prompts = prompt_classes, max_prompts
        self.ignore_ids, self.background_id = tuple(ignore_ids), background_id
        kwargs.setdefault('metainfo', dict(classes=self.class_names))
        super().__init__(*args, task=task, **kwargs)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        classes = self.require(record, 'classes', index, list)
        present = []
        for j, item in enumerate(classes):
            if not isinstance(item, dict) or not isinstance(item.get('class_id'), int) \
                    or not 0 <= item['class_id'] < len(self.class_names):
                raise UserError(f'{self.ann_file} record {index}: classes[{j}] needs an integer '
                                f'"class_id" in [0, {len(self.class_names)})')
            present.append(item['class_id'])
        return [dict(img_path=self.media_path(record, 'image_path', index),
                     sem_seg_path=self.media_path(record, 'label_path', index),
                     present_ids=present, img_id=record.get('id', index))]

    def _prompt_ids(self, present: list[int], rng: np.random.Generator) -> list[int]:
        skip = set(self.ignore_ids) | {self.background_id}
        ids = sorted(set(present) if self.prompt_classes == 'present'
                     else set(range(len(self.class_names))))
        ids = [i for i in ids if i not in skip]
        if len(ids) > self.max_prompts:
            ids = ids[:self.max_prompts] if self.test_mode else \
                sorted(rng.choice(ids, self.max_prompts, replace=False).tolist())
        return ids

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        ids = self._prompt_ids(info['present_ids'], rng)
        names = [self.class_names[i] for i in ids]
        question = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
        items = '; '.join(self.templates['answer_item'].format(n) for n in names)
        info['conversations'] = [
            {'from': 'human', 'value': question.format(', '.join(names))},
            {'from': 'gpt', 'value': self.templates['answer'].format(items)}]
        info['mask_anns'] = [dict(label_path=info['sem_seg_path'], class_id=i) for i in ids]
        info['prompt_class_ids'] = ids
        info['sem_seg_ignore_ids'] = self.ignore_ids
        info['background_id'] = self.background_id
        return info
