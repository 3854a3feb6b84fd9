"""Instance segmentation from a COCO instances JSON (``images``, ``annotations``, ``categories``).

One sample per image. The question names the categories present; the answer has one item per
instance, each with its own [SEG]: "Sure. circle: [SEG]; circle: [SEG]; square: [SEG]." The
targets (``mask_anns``) follow the answer's order, so the k-th [SEG] is supervised by the k-th
instance. Instances are listed by category, then left to right: a fixed order the model can learn
(an arbitrary order would make the k-th [SEG] ambiguous between same-category objects).
Crowd annotations are never prompted (COCO evaluation ignores them anyway).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


from ullava.datasets.base import ULLaVADataset
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates, pick
from ullava.utils import UserError

TEMPLATES = str(Path(__file__).with_name('templates.json'))


@DATASETS.register_module()
class InstanceSegDataset(ULLaVADataset):
    """Args:
        ann_file: a COCO instances JSON; ``file_name`` is relative to ``data_root`` (or to
            ``data_prefix['img_path']``).
        max_instances: at most this many instances per sample (the sequence holds one [SEG]
            each); training draws a random subset, test keeps the first ones in answer order.
        filter_empty: drop images without a (non-crowd) instance: they have nothing to answer.
    Other arguments as :class:`ullava.datasets.ULLaVADataset`.
    """

    def __init__(self, *args, max_instances: int = 10, filter_empty: bool = True,
                 task: str = 'instance_seg', templates: str = TEMPLATES, **kwargs: Any) -> None:
        self.templates = load_templates(templates)
        self.max_instances, self.filter_empty = max_instances, filter_empty
        super().__init__(*args, task=task, **kwargs)

    def records(self, coco: Any) -> list[dict]:
        if not isinstance(coco, dict) or not all(
                isinstance(coco.get(k), list) for k in ('images', 'annotations', 'categories')):
            raise UserError(f'{self.ann_file}: expected COCO instances JSON with "images", '
                            f'"annotations" and "categories" lists')
        cats = coco['categories']
        if not all(isinstance(c, dict) and 'id' in c and isinstance(c.get('name'), str)
                   for c in cats):
            raise UserError(f'{self.ann_file}: every category needs an "id" and a "name"')
        # label = position in `categories`; the metric maps it back through `cat_ids`
        self.label_of = {c['id']: i for i, c in enumerate(cats)}
        self._metainfo.update(classes=tuple(c['name'] for c in cats),
                              cat_ids=tuple(c['id'] for c in cats))
        by_image: dict = defaultdict(list)
        for ann in coco['annotations']:
            if isinstance(ann, dict) and not ann.get('iscrowd', 0):
                by_image[ann.get('image_id')].append(ann)
        return [dict(img, anns=by_image.get(img.get('id'), [])) if isinstance(img, dict) else img
                for img in coco['images']]

    def parse_record(self, record: dict, index: int) -> list[dict]:
        img_path = self.media_path(record, 'file_name', index)
        img_id = self.require(record, 'id', index, int)
        instances = []
        for ann in record['anns']:
            where = f'{self.ann_file} record {index} (image {img_id}) annotation {ann.get("id")}'
            if ann.get('category_id') not in self.label_of:
                raise UserError(f'{where}: field "category_id" {ann.get("category_id")!r} is '
                                f'not in "categories"')
            if not isinstance(ann.get('segmentation'), (list, dict)):
                raise UserError(f'{where}: field "segmentation" must be polygons or an RLE')
            bbox = ann.get('bbox')
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise UserError(f'{where}: field "bbox" must be [x, y, w, h]')
            instances.append((self.label_of[ann['category_id']], bbox[0], bbox[1],
                              dict(segmentation=ann['segmentation'], bbox=bbox)))
        if not instances and self.filter_empty:
            return []
        instances.sort(key=lambda t: t[:3])  # category, then left to right, then top to bottom
        return [dict(img_path=img_path, img_id=img_id, labels=[t[0] for t in instances],
                     anns=[t[3] for t in instances])]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        keep = list(range(len(info['labels'])))
        if len(keep) > self.max_instances:
            keep = keep[:self.max_instances] if self.test_mode else \
                sorted(rng.choice(keep, self.max_instances, replace=False).tolist())
        labels = [info['labels'][i] for i in keep]
        names = self.metainfo['classes']
        present = list(dict.fromkeys(names[label] for label in labels))
        question = pick(self.templates['train'], self.test_mode, self.templates['test'], rng)
        items = '; '.join(self.templates['answer_item'].format(names[label]) for label in labels)
        info['conversations'] = [
            {'from': 'human', 'value': question.format(', '.join(present))},
            {'from': 'gpt', 'value': self.templates['answer'].format(items)}]
        info['mask_anns'] = [info['anns'][i] for i in keep]
        info['prompt_class_ids'] = labels  # the label of each [SEG], in answer order
        return info
