"""Salient object segmentation.

:class:`SalientDataset` reads the reference's JSON records (MSRA-10K, MSRA-B):
``{"image_path", "label_path" (mask PNG), "gpt": {"reason": str, "tag": str}}``, answered
``Sure. Mask: [SEG]; Location: [LOC]; [tag]<tag>[/tag]. Explanation: <reason>`` (both
lower-cased, as the reference's ``salient_seg_dataset.py``). The older shape, ``"gpt"`` a plain
reason string (or absent), is still read, with the tag "salient object".
:class:`SalientFolderDataset` reads plain image/mask folder pairs (DUTS-style) for evaluation:
``<img_dir>/<name>.jpg|png`` with ``<mask_dir>/<name>.png``.

The object is the pixels EQUAL to 255, as the reference counts them (a soft edge, 1..254, is
background); ``mask_threshold=t`` counts the pixels above ``t`` instead.
"""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path

from ullava.datasets.base import ULLaVADataset, quote
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates, pick
from ullava.utils import UserError

TEMPLATES = str(Path(__file__).with_name('templates.json'))
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


@DATASETS.register_module()
class SalientDataset(ULLaVADataset):

    def __init__(self, *args, task: str = 'salient', templates: str | dict = TEMPLATES,
                 mask_threshold: int | None = None, **kwargs) -> None:
        self.templates = load_templates(templates, TEMPLATES)
        self.mask_threshold = mask_threshold
        super().__init__(*args, task=task, **kwargs)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        reason, tag = self._reason_and_tag(record.get('gpt'), index)
        mask_ann = dict(mask_path=self.media_path(record, 'label_path', index))
        if self.mask_threshold is not None:
            mask_ann['threshold'] = self.mask_threshold
        return [dict(img_path=self.media_path(record, 'image_path', index), mask_anns=[mask_ann],
                     reason=reason, tag=tag, img_id=record.get('id', index))]

    def _reason_and_tag(self, gpt, index: int) -> tuple[str | None, str | None]:
        """``gpt`` as the reference writes it, ``{"reason", "tag"}``, or a bare reason string."""
        if gpt is None or isinstance(gpt, str):
            return gpt, None
        where = f'{self.ann_file} record {index}'
        if not isinstance(gpt, dict):
            raise UserError(f'{where}: field "gpt" should be {{"reason": str, "tag": str}} or a '
                            f'string, got {type(gpt).__name__} {quote(gpt)}')
        for key in ('reason', 'tag'):
            if not isinstance(gpt.get(key), str):
                raise UserError(f'{where}: field "gpt" needs a string "{key}", got '
                                f'{quote(gpt.get(key))}')
        return gpt['reason'], gpt['tag']

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        question = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
        if info.get('tag') is not None:  # the reference's answer, lower-cased as it does
            answer = self.templates['answer_tagged'].format(info['tag'].lower(),
                                                            info['reason'].lower())
        elif info.get('reason'):
            answer = self.templates['answer'].format(info['reason'])
        else:
            answer = self.templates['answer_no_reason']
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
