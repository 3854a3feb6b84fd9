"""RefCOCO / RefCOCO+ / RefCOCOg / RefCLEF in u-LLaVA's re-packed JSON format.

Each record is one referred object: ``image_path``, ``height``, ``width``, ``sentences``,
``category``, ``bbox`` (COCO xywh), ``segmentation``: a list of polygons, a list of RLE parts
(summed into one mask), ``[]`` (no mask) or one RLE dict (see
:func:`ullava.datasets.transforms.loading.decode_segmentation`). Training samples pick
one sentence at random; test samples are one per sentence (each expression scored once).
The answer carries one [SEG] (-> mask) and one [LOC] (-> box), so RES and REC share this data.

``refs_per_sample=k`` (training only) groups the objects of one image and asks about up to k of
them in one multi-turn conversation, as LISA's referring-segmentation loader does: several [SEG]
states decoded against the same image embedding, with different targets, is what teaches a mask
decoder trained from scratch to follow its prompt (docs/benchmarks.md, "The embedded demo").
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

    def __init__(self, *args, task: str = 'res', templates: str | dict = TEMPLATES,
                 refs_per_sample: int = 1, **kwargs) -> None:
        if not isinstance(refs_per_sample, int) or refs_per_sample < 1:
            raise UserError(f'RefCOCODataset: refs_per_sample must be an integer >= 1, '
                            f'got {refs_per_sample!r}')
        self.templates = load_templates(templates, TEMPLATES)
        self.refs_per_sample = refs_per_sample
        super().__init__(*args, task=task, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = super().load_data_list()
        if self.test_mode or self.refs_per_sample == 1:
            return data_list
        return self.group_by_image(data_list)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        img_path = self.media_path(record, 'image_path', index)
        sentences = self.require(record, 'sentences', index, list)
        if not sentences or not all(isinstance(s, str) and s.strip() for s in sentences):
            raise UserError(f'{self.ann_file} record {index}: "sentences" must be non-empty strings')
        bbox = self.require(record, 'bbox', index, list)
        if len(bbox) != 4:
            raise UserError(f'{self.ann_file} record {index}: "bbox" must be [x, y, w, h]')
        ann = dict(segmentation=self.require(record, 'segmentation', index, (list, dict)), bbox=bbox)
        for key in ('height', 'width'):  # the declared size, checked against the image on load
            if key in record:
                ann[key] = self.require(record, key, index, int)
        base = dict(img_path=img_path, mask_anns=[ann], category=record.get('category', 'object'),
                    img_id=record.get('ann_id', index))
        if self.test_mode:
            return [dict(base, sentence=s) for s in sentences]
        return [dict(base, sentences=sentences)]

    def get_data_info(self, idx: int) -> dict:
        """One question/answer turn per referred object: the sample's own object, or (grouped by
        ``refs_per_sample``) up to that many objects of its image in random order."""
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        refs = info.pop('group', None)
        if refs is None:
            chosen = [info]
        else:
            chosen = [refs[i] for i in rng.permutation(len(refs))[:self.refs_per_sample]]
            info['mask_anns'] = [ref['mask_anns'][0] for ref in chosen]
        info['conversations'] = []
        for turn, ref in enumerate(chosen):
            sentence = ref.get('sentence') or ref['sentences'][rng.integers(len(ref['sentences']))]
            question = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
            if turn:
                question = self.without_image(question)
            info['conversations'] += [
                {'from': 'human', 'value': question.format(sentence)},
                {'from': 'gpt', 'value': self.templates['answer'].format(
                    str(ref['category']).lower())}]  # lower-cased, as the reference
        return info
