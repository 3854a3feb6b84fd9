"""Image captioning on COCO-caption style annotations (``{"images", "annotations"}``).

Training: one sample per caption. Test: one sample per image, every caption of it a reference.
LLaVA's CC3M ``chat.json`` and TGIF video captions use :class:`ullava.datasets.LLaVADataset`.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ullava.datasets.base import ULLaVADataset
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates, pick
from ullava.utils import UserError

TEMPLATES = str(Path(__file__).with_name('templates.json'))


@DATASETS.register_module()
class COCOCaptionDataset(ULLaVADataset):

    def __init__(self, *args, task: str = 'caption', templates: str | dict = TEMPLATES,
                 **kwargs) -> None:
        self.templates = load_templates(templates, TEMPLATES)
        super().__init__(*args, task=task, **kwargs)

    def records(self, annotations) -> list:
        if not isinstance(annotations, dict) or 'images' not in annotations \
                or 'annotations' not in annotations:
            raise UserError(f'{self.ann_file}: expected COCO captions JSON with "images" and '
                            f'"annotations"')
        captions = defaultdict(list)
        for i, ann in enumerate(annotations['annotations']):
            if 'image_id' not in ann or not isinstance(ann.get('caption'), str):
                raise UserError(f'{self.ann_file} annotations[{i}]: needs "image_id" and "caption"')
            captions[ann['image_id']].append(ann['caption'].strip())
        return [dict(img, captions=captions.get(img.get('id'), [])) for img in annotations['images']]

    def parse_record(self, record: dict, index: int) -> list[dict]:
        path = self.media_path(record, 'file_name', index)
        caps = record['captions']
        if not caps:
            raise UserError(f'{self.ann_file} images[{index}]: image {record.get("id")} has no caption')
        base = dict(img_path=path, img_id=record.get('id', index))
        if self.test_mode:
            return [dict(base, gt_captions=caps, caption=caps[0])]
        return [dict(base, caption=c) for c in caps]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        question = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
        info['conversations'] = [{'from': 'human', 'value': question},
                                 {'from': 'gpt', 'value': info['caption']}]
        return info
