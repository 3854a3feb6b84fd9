"""Object parts: PACO-LVIS and PASCAL-Part in u-LLaVA's re-packed JSON (the reference's
``PacoDataset`` in ``sem_seg_dataset.py``). Not label maps: each record is

    {"image_path", "classes": ["<class name>", ...],
     "annotations": [{"height", "width", "bbox": [x, y, w, h], "segmentation"}, ...]}

with ``annotations[j]`` the object of ``classes[j]``; ``segmentation`` is COCO polygons (merged),
an RLE with list counts or an RLE with string counts (see
:func:`ullava.datasets.transforms.loading.decode_segmentation`). A training sample asks about up to
``max_prompts`` (3, as the reference) of them, one turn each, answered
``Sure. Info: [SEG]; Location: [LOC]; [tag]<class>[/tag].`` ("Info" where the other tasks say
"Mask", as the reference); a test sample asks about every class of its record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ullava.datasets.base import ULLaVADataset, quote
from ullava.registry import DATASETS
from ullava.tasks.templates import load_templates
from ullava.utils import UserError

from .dataset import class_turns, load_class_names

TEMPLATES = str(Path(__file__).with_name('templates.json'))


@DATASETS.register_module()
class PartSegDataset(ULLaVADataset):
    """Args:
        class_names: optional, the dataset's class list for ``metainfo`` (a built-in list's
            name, ``'paco_lvis'`` / ``'pascal_part'``, a JSON file or a list); records carry
            their class names themselves.
        max_prompts: classes asked about per training sample (a seeded random subset).
    """

    def __init__(self, *args, class_names: Sequence[str] | str | None = None,
                 max_prompts: int = 3, task: str = 'partseg',
                 templates: str | dict = TEMPLATES, **kwargs) -> None:
        self.templates = load_templates(templates, TEMPLATES)
        self.max_prompts = max_prompts
        if class_names is not None:
            kwargs.setdefault('metainfo', dict(
                classes=load_class_names(class_names, kwargs.get('data_root', ''))))
        super().__init__(*args, task=task, **kwargs)

    def parse_record(self, record: dict, index: int) -> list[dict]:
        where = f'{self.ann_file} record {index}'
        classes = self.require(record, 'classes', index, list)
        anns = self.require(record, 'annotations', index, list)
        if not classes or not all(isinstance(c, str) and c.strip() for c in classes):
            raise UserError(f'{where}: field "classes" must be a non-empty list of class-name '
                            f'strings, got {quote(classes)}')
        if len(anns) != len(classes):
            raise UserError(f'{where}: "annotations" has {len(anns)} entries but "classes" has '
                            f'{len(classes)} (they are parallel lists)')
        mask_anns = []
        for j, ann in enumerate(anns):
            field = f'annotations[{j}]'
            for key, kind in (('segmentation', (list, dict)), ('bbox', list), ('height', int),
                              ('width', int)):
                self.require(ann, key, index, kind, where=f'{where}: {field}')
            if len(ann['bbox']) != 4:
                raise UserError(f'{where}: {field}.bbox must be [x, y, w, h], got '
                                f'{quote(ann["bbox"])}')
            mask_anns.append(dict(segmentation=ann['segmentation'], bbox=ann['bbox'],
                                  height=ann['height'], width=ann['width'], field=field))
        return [dict(img_path=self.media_path(record, 'image_path', index), classes=classes,
                     part_anns=mask_anns, img_id=record.get('id', index))]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        rng = self.sample_rng(idx)
        order = list(range(len(info['classes'])))
        if not self.test_mode and len(order) > self.max_prompts:
            order = rng.choice(order, self.max_prompts, replace=False).tolist()
        info['mask_anns'] = [info['part_anns'][j] for j in order]
        info['conversations'] = class_turns([info['classes'][j] for j in order], self.templates,
                                            self.templates['part_answer'], self.test_mode, rng)
        return info
