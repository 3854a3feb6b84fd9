"""RefCOCO / RefCOCO+ / RefCOCOg / RefCLEF in their ORIGINAL layout (Licheng Yu's ``refer``):

    <data_root>/refcoco/refs(unc).p       a pickle: list of refs {ref_id, ann_id, image_id, split,
                                          sentences: [{sent, raw, tokens, sent_id}], category_id}
    <data_root>/refcoco/instances.json    COCO: images, annotations (segmentation, bbox), categories

One sample per ref of the chosen ``split``, with the same data infos as :class:`RefCOCODataset`
(so the same pipeline, question and answer templates apply).

Why not mmdet's ``RefCocoDataset``: it loads the refs file with ``mmengine.load(..., 'pkl')``, an
unrestricted ``pickle.load`` that runs whatever code a downloaded file carries; it groups refs per
image into mmdet's grounding format (``instances`` / ``text``) instead of one referred object per
sample; it picks sentences with the unseeded ``random`` module; and it neither validates records
nor names a bad one. So we read the same two files here, with a restricted unpickler.
"""
from __future__ import annotations

import os.path as osp
import pickle
from typing import Any, Sequence

from ullava.registry import DATASETS
from ullava.utils import UserError

from .dataset import RefCOCODataset


class _ContainersOnlyUnpickler(pickle.Unpickler):
    """Refuse every global: a refs file holds only lists, dicts, str and numbers, which pickle
    builds from opcodes without ``find_class``. Any class or function reference (the way a
    malicious pickle runs code) is an error instead of an import."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f'refers to {module}.{name}; a refs file may hold only '
                                     f'lists, dicts, strings and numbers')


def load_refs(path: str) -> list:
    """Load a ``refs(*).p`` file with :class:`_ContainersOnlyUnpickler` (never plain pickle)."""
    if not osp.isfile(path):
        raise UserError(f'refs file not found: {path}')
    try:
        with open(path, 'rb') as f:
            # The released files were written by Python 2: its byte strings decode as UTF-8.
            refs = _ContainersOnlyUnpickler(f, encoding='utf-8', errors='replace').load()
    except Exception as err:  # UnpicklingError, EOFError, ... on a bad file
        raise UserError(f'{path} is not a readable refs pickle ({err})') from None
    if not isinstance(refs, list):
        raise UserError(f'{path}: expected a list of refs, got {type(refs).__name__}')
    return refs


@DATASETS.register_module()
class RefCOCOOriginalDataset(RefCOCODataset):
    """Args:
        ann_file: ``instances.json`` (relative to ``data_root``).
        split_file: ``refs(unc).p`` / ``refs(umd).p`` / ``refs(google).p`` / ``refs(berkeley).p``
            (relative to ``data_root``).
        split: which refs to use: ``'train'``, ``'val'``, ``'test'``, ``'testA'``, ``'testB'``
            (those present in the file).
        data_prefix: ``dict(img_path=...)``: the image folder (e.g. ``coco2014/train2014``) that
            the images' ``file_name`` is relative to, itself relative to ``data_root``.
    Other arguments as :class:`RefCOCODataset`. Errors name the refs file and the ref's index.
    """

    def __init__(self, *args, split_file: str, split: str = 'train', **kwargs) -> None:
        self.split_file, self.split = split_file, split
        super().__init__(*args, **kwargs)

    def _join_prefix(self) -> None:
        if self.split_file and not osp.isabs(self.split_file):
            self.split_file = osp.join(self.data_root, self.split_file)
        super()._join_prefix()

    def read_annotations(self) -> tuple[list, dict]:
        instances = super().read_annotations()
        if not isinstance(instances, dict) or not all(
                isinstance(instances.get(k), list) for k in ('images', 'annotations', 'categories')):
            raise UserError(f'{self.ann_file}: expected COCO instances JSON with "images", '
                            f'"annotations" and "categories" lists')
        return load_refs(self.split_file), instances

    def records(self, annotations: tuple[list, dict]) -> list:
        refs, instances = annotations
        self._images = self._index(instances['images'], 'images')
        self._anns = self._index(instances['annotations'], 'annotations')
        self._categories = {c.get('id'): c.get('name', 'object') for c in instances['categories']
                            if isinstance(c, dict)}
        splits = {r.get('split') for r in refs if isinstance(r, dict)}
        if self.split not in splits:
            raise UserError(f'{self.split_file}: no refs in split {self.split!r}; the file has '
                            f'{sorted(map(str, splits))}')
        return refs  # every ref, so that an error's index is the ref's index in the file

    def _index(self, items: Sequence, key: str) -> dict:
        out = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict) or 'id' not in item:
                raise UserError(f'{self.ann_file} {key}[{i}]: missing field "id"')
            out[item['id']] = item
        return out

    def _field(self, ref: Any, field: str, index: int, kind: type | tuple) -> Any:
        return self.require(ref, field, index, kind, where=f'{self.split_file} ref {index}')

    def parse_record(self, ref: dict, index: int) -> list[dict]:
        if self._field(ref, 'split', index, str) != self.split:
            return []
        where = f'{self.split_file} ref {index}'
        ann_id = self._field(ref, 'ann_id', index, int)
        sentences = [s.get('sent') or s.get('raw') if isinstance(s, dict) else None
                     for s in self._field(ref, 'sentences', index, list)]
        if not sentences or not all(isinstance(s, str) and s.strip() for s in sentences):
            raise UserError(f'{where}: field "sentences" must be a non-empty list of '
                            f'{{"sent": str}}')
        ann = self._anns.get(ann_id)
        if ann is None:
            raise UserError(f'{where}: field "ann_id" {ann_id} is not in {self.ann_file}')
        image = self._images.get(ann.get('image_id'))
        if image is None or not isinstance(image.get('file_name'), str):
            raise UserError(f'{where}: the image of ann_id {ann_id} (image_id '
                            f'{ann.get("image_id")}) has no "file_name" in {self.ann_file}')
        img_path = osp.join(self.data_prefix.get('img_path') or self.data_root, image['file_name'])
        if self.check_files and not osp.exists(img_path):
            raise UserError(f'{where}: field "image_id" {image["id"]}: image {img_path} '
                            f'does not exist')
        segmentation, bbox = ann.get('segmentation'), ann.get('bbox')
        if not isinstance(segmentation, (list, dict)) or not isinstance(bbox, list) \
                or len(bbox) != 4:
            raise UserError(f'{where}: field "ann_id" {ann_id} needs a "segmentation" and a '
                            f'"bbox" [x, y, w, h] in {self.ann_file}')
        category = self._categories.get(ref.get('category_id', ann.get('category_id')), 'object')
        mask_ann = dict(segmentation=segmentation, bbox=bbox)
        mask_ann.update({k: image[k] for k in ('height', 'width') if isinstance(image.get(k), int)})
        base = dict(img_path=img_path, mask_anns=[mask_ann],
                    category=category, img_id=ann_id, ref_id=ref.get('ref_id', index))
        if self.test_mode:
            return [dict(base, sentence=s) for s in sentences]
        return [dict(base, sentences=sentences)]
