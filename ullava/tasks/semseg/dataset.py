"""Semantic segmentation from label maps: ADE20K, COCO-Stuff (and any label-map set) as u-LLaVA
uses them. Records: ``{"image_path", "label_path", "classes": [{"class", "class_id"}]}``; the
target of a class is the pixels equal to its id AFTER the dataset's label rules:

* ``reduce_zero_label`` (ADE20K, as the reference and mmseg): 0 -> 255 (ignored), k -> k-1, so
  a record's ``class_id`` 4 is raw pixel value 5;
* ``ignore_ids`` and ``ignore_names_containing`` (COCO-Stuff: every class whose name has a "-",
  as the reference) -> 255, never prompted, ignored by the metric.

A sample asks for several classes at once ("Can you segment the circle, square in this image?"
-> "Sure. circle: [SEG]; square: [SEG].") so one forward pass yields a mask per class, from which
the metric assembles the full label map for mIoU. At test time every class of the dataset is
prompted (the GT is not looked at), as a standard mIoU needs. ``one_turn_per_class=True`` asks
instead as the reference trains: one turn per class, answered
``Sure. Mask: [SEG]; Location: [LOC]; [tag]<class>[/tag].`` (:func:`class_turns`).

The class lists of ADE20K-150, COCO-Stuff (182 ids), PASCAL-Part and PACO-LVIS ship in
``classes/`` (public dataset metadata; the reference keeps them in its code); ``class_names``
names one of them or gives a JSON list file (or a list) instead.
"""
from __future__ import annotations

import json
import os.path as osp
from pathlib import Path
from typing import Sequence

import numpy as np

from ullava.datasets.base import ULLaVADataset, quote
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates, pick
from ullava.utils import UserError

TEMPLATES = str(Path(__file__).with_name('templates.json'))
CLASS_LISTS = Path(__file__).with_name('classes')
BUILTIN_CLASSES = tuple(sorted(p.stem for p in CLASS_LISTS.glob('*.json')))


def load_class_names(spec: Sequence[str] | str, data_root: str = '') -> list[str]:
    """A class list: a built-in one by name (``'ade20k'``, ``'cocostuff'``, ``'pascal_part'``,
    ``'paco_lvis'``), a JSON list file (absolute, or relative to ``data_root``), or the list."""
    if not isinstance(spec, str):
        names = list(spec)
    else:
        if spec in BUILTIN_CLASSES:
            path = str(CLASS_LISTS / f'{spec}.json')
        else:
            path = spec if osp.isabs(spec) else osp.join(data_root, spec)
            if not osp.isfile(path):
                raise UserError(f'class_names file not found: {path} (built-in lists: '
                                f'{", ".join(BUILTIN_CLASSES)})')
        try:
            names = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise UserError(f'class_names file {path} is not valid JSON: {err}') from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f'class_names {quote(spec)} should be a list of strings')
    return names


def class_turns(names: Sequence[str], templates: dict, answer: str, test_mode: bool,
                rng: np.random.Generator) -> list[dict]:
    """The reference's multi-round sample: one question/answer turn per class name (lower-cased
    as the reference), the image shown in the first question only."""
    turns = []
    for k, name in enumerate(names):
        question = pick(templates['turn_train'], test_mode, templates['turn_test'], rng)
        if k:
            question = question.replace('<image>\n', '')
        turns += [{'from': 'human', 'value': question.format(name.lower())},
                  {'from': 'gpt', 'value': answer.format(name.lower())}]
    return turns


@DATASETS.register_module()
class SemanticSegDataset(ULLaVADataset):
    """Args:
        class_names: every class name, indexed by its (reduced) label value: a built-in list's
            name, a JSON file of that list, or the list itself (see :func:`load_class_names`).
        reduce_zero_label: mmseg's label reduction (0 -> 255, k -> k-1) before anything else.
        ignore_ids: label values (after the reduction) set to 255: never prompted, ignored.
        ignore_names_containing: also ignore every class whose name contains this string
            (``'-'`` for COCO-Stuff, as the reference).
        prompt_classes: in training, ``'present'`` (classes listed in the record) or ``'all'``
            (every class but the ignored ones; absent ones get empty masks -- "not here").
        max_prompts: in training, at most this many classes per sample (a seeded random subset).
        test_prompt_classes: at test time ``'all'`` (default: every class, the GT unseen, as
            mIoU needs) or ``'present'`` (the record's classes: looks at the GT; the old way).
        max_test_prompts: at test time, at most this many classes (the first ones); None (the
            default) prompts them all; 8 was the old behaviour.
        background_id: the label value of pixels no prompted class claims (None: ignore them).
        one_turn_per_class: the reference's conversation (one turn per class, each answered
            with a [SEG] and a [LOC]) instead of one turn listing the classes.
    """

    def __init__(self, *args, class_names: Sequence[str] | str,
                 reduce_zero_label: bool = False, ignore_ids: Sequence[int] = (),
                 ignore_names_containing: str | None = None, prompt_classes: str = 'present',
                 max_prompts: int = 8, test_prompt_classes: str = 'all',
                 max_test_prompts: int | None = None, background_id: int | None = 0,
                 one_turn_per_class: bool = False, task: str = 'semseg',
                 templates: str | dict = TEMPLATES, **kwargs) -> None:
        self.templates = load_templates(templates, TEMPLATES)
        self.class_names = load_class_names(class_names, kwargs.get('data_root', ''))
        for name, value in (('prompt_classes', prompt_classes),
                            ('test_prompt_classes', test_prompt_classes)):
            if value not in ('present', 'all'):
                raise UserError(f"{name} must be 'present' or 'all', got {value!r}")
        self.prompt_classes, self.max_prompts = prompt_classes, max_prompts
        self.test_prompt_classes, self.max_test_prompts = test_prompt_classes, max_test_prompts
        self.reduce_zero_label = bool(reduce_zero_label)
        self.one_turn_per_class = one_turn_per_class
        ignore = set(ignore_ids)
        if ignore_names_containing:
            ignore |= {i for i, n in enumerate(self.class_names) if ignore_names_containing in n}
        self.ignore_ids, self.background_id = tuple(sorted(ignore)), background_id
        kwargs.setdefault('metainfo', dict(classes=self.class_names))
        super().__init__(*args, task=task, **kwargs)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        classes = self.require(record, 'classes', index, list)
        present = []
        for j, item in enumerate(classes):
            class_id = item.get('class_id') if isinstance(item, dict) else None
            if not isinstance(class_id, int) or not 0 <= class_id < len(self.class_names):
                raise UserError(f'{self.ann_file} record {index}: classes[{j}] needs an integer '
                                f'"class_id" in [0, {len(self.class_names)}), got '
                                f'{quote(item)}')
            present.append(class_id)
        return [dict(img_path=self.media_path(record, 'image_path', index),
                     sem_seg_path=self.media_path(record, 'label_path', index),
                     present_ids=present, img_id=record.get('id', index))]

    def _prompt_ids(self, present: list[int], rng: np.random.Generator) -> list[int]:
        skip = set(self.ignore_ids) | {self.background_id}
        which = self.test_prompt_classes if self.test_mode else self.prompt_classes
        ids = sorted(set(present) if which == 'present' else set(range(len(self.class_names))))
        ids = [i for i in ids if i not in skip]
        if self.test_mode:
            return ids if self.max_test_prompts is None else ids[:self.max_test_prompts]
        if len(ids) > self.max_prompts:
            ids = sorted(rng.choice(ids, self.max_prompts, replace=False).tolist())
        return ids

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        ids = self._prompt_ids(info['present_ids'], rng)
        names = [self.class_names[i] for i in ids]
        if self.one_turn_per_class:
            info['conversations'] = class_turns(names, self.templates,
                                                self.templates['turn_answer'], self.test_mode, rng)
        else:
            question = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
            items = '; '.join(self.templates['answer_item'].format(n) for n in names)
            info['conversations'] = [
                {'from': 'human', 'value': question.format(', '.join(names))},
                {'from': 'gpt', 'value': self.templates['answer'].format(items)}]
        info['mask_anns'] = [dict(label_path=info['sem_seg_path'], class_id=i) for i in ids]
        info['prompt_class_ids'] = ids
        info['reduce_zero_label'] = self.reduce_zero_label
        info['sem_seg_ignore_ids'] = self.ignore_ids
        info['background_id'] = self.background_id
        return info


@DATASETS.register_module()
class ADE20KDataset(SemanticSegDataset):
    """ADE20K-150 as the reference reads it: the built-in class list, ``reduce_zero_label``
    (raw 0 "other" ignored, raw k is class k-1), no background class."""

    def __init__(self, *args, class_names: Sequence[str] | str = 'ade20k',
                 reduce_zero_label: bool = True, background_id: int | None = None,
                 **kwargs) -> None:
        super().__init__(*args, class_names=class_names, reduce_zero_label=reduce_zero_label,
                         background_id=background_id, **kwargs)


@DATASETS.register_module()
class COCOStuffDataset(SemanticSegDataset):
    """COCO-Stuff (164k, 182 ids) as the reference reads it: the built-in class list, raw
    label values, every class whose name contains "-" (``building-other``...) ignored."""

    def __init__(self, *args, class_names: Sequence[str] | str = 'cocostuff',
                 ignore_names_containing: str | None = '-', background_id: int | None = None,
                 **kwargs) -> None:
        super().__init__(*args, class_names=class_names,
                         ignore_names_containing=ignore_names_containing,
                         background_id=background_id, **kwargs)
