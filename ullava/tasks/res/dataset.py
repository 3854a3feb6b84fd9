"""RefCOCO / RefCOCO+ / RefCOCOg / RefCLEF in u-LLaVA's re-packed JSON format.

Each record is one referred object: ``image_path``, ``height``, ``width``, ``sentences``,
``category``, ``bbox`` (COCO xywh), ``segmentation`` (COCO polygons or RLE). Training samples pick
one sentence at random; test samples are one per sentence (each expression scored once).
The answer carries one [SEG] (-> mask) and one [LOC] (-> box), so RES and REC share this data.
"""
from __future__ import annotations

from pathlib import Path


from ullava.datasets.base import ULLaVADataset
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates, pick
from ullava.utils import UserError

TEMPLATES = str(Path(__file__).with_name('templates.json'))


@DATASETS.register_module()
class RefCOCODataset(ULLaVADataset):

    def __init__(self, *args, task: str = 'res', templates: str = TEMPLATES, **kwargs) -> None:
        self.templates = load_templates(templates)
        super().__init__(*args, task=task, **kwargs)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        img_path = self.media_path(record, 'image_path', index)
        sentences = self.require(record, 'sentences', index, list)
        if not sentences or not all(isinstance(s, str) and s.strip() for s in sentences):
            raise UserError(f'{self.ann_file} record {index}: "sentences" must be non-empty strings')
        bbox = self.require(record, 'bbox', index, list)
        if len(bbox) != 4:
            raise UserError(f'{self.ann_file} record {index}: "bbox" must be [x, y, w, h]')
        ann = dict(segmentation=self.require(record, 'segmentation', index, (list, dict)), bbox=bbox)
        base = dict(img_path=img_path, mask_anns=[ann], category=record.get('category', 'object'),
                    img_id=record.get('ann_id', index))
        if self.test_mode:
            return [dict(base, sentence=s) for s in sentences]
        return [dict(base, sentences=sentences)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        sentence = info.get('sentence') or \
            info['sentences'][rng.integers(len(info['sentences']))]
        question = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
        info['conversations'] = [
            {'from': 'human', 'value': question.format(sentence)},
            {'from': 'gpt', 'value': self.templates['answer'].format(info['category'])}]
        return info
