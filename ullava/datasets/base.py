"""The base of every ullava dataset: annotation-file validation, ``portion``, skip-and-count."""
from __future__ import annotations

import json
import logging
import os.path as osp
from typing import Any

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ullava.utils import UserError

from .conversation import remove_placeholder

QUOTE_LIMIT = 80
MAX_SKIP_LOGS = 20  # skip messages logged one by one; after that only counted


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages: a bad field is named
    and shown without pasting a whole RLE string or record into the one line a user reads."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


class ULLaVADataset(BaseDataset):
    """Reads a JSON annotation file and turns each record into one or more samples.

    Subclasses implement :meth:`parse_record` (record -> list of data infos), raising
    :class:`UserError` naming the field for a malformed record.

    Args:
        ann_file: the annotation JSON (relative to ``data_root``).
        data_root: root that relative media paths in the records are joined to.
        task: task name stored in every sample (metrics select their samples by it).
        portion: fraction of the samples used (a fixed, seeded subset), as u-LLaVA's ``portion``.
        on_error: ``'raise'`` (default) or ``'skip'``: skip bad records (and samples whose
            media fail to load in training), counting and logging them.
        check_files: check at load time that every referenced media file exists.
        seed: seeds each sample's own random choices (template, sentence): sample ``idx`` draws
            from ``default_rng([seed, idx])``, so a sample is the same whatever the worker or
            process that loads it, and a resumed run sees exactly the data it would have seen.
    """

    def __init__(self, ann_file: str, data_root: str = '', task: str = 'task',
                 portion: float = 1.0, on_error: str = 'raise', check_files: bool = True,
                 seed: int = 0, **kwargs: Any) -> None:
        if on_error not in ('raise', 'skip'):
            raise UserError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if not 0 < portion <= 1:
            raise UserError(f'portion must be in (0, 1], got {portion}')
        self.task, self.portion, self.on_error, self.check_files = task, portion, on_error, check_files
        self.seed = seed
        self.num_skipped = 0
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    # -- helpers for subclasses ------------------------------------------------------------
    def media_path(self, record: dict, field: str, index: int) -> str:
        """Join ``record[field]`` to the media root; check it exists when ``check_files``.

        The media root is ``data_prefix['img_path']`` when given (MMEngine joins it to
        ``data_root``), so annotations and images may live in different folders under one root.
        """
        value = self.require(record, field, index, str)
        root = (self.data_prefix or {}).get('img_path') or self.data_root
        path = value if osp.isabs(value) else osp.join(root, value)
        if self.check_files and not osp.exists(path):
            raise UserError(f'{self.ann_file} record {index}: {field} {path} does not exist')
        return path

    def require(self, record: dict, field: str, index: int, kind: type | tuple = object,
                where: str | None = None) -> Any:
        """``record[field]``, checked to exist and be of ``kind``; errors name file and record
        (``where``, default ``'<ann_file> record <index>'``)."""
        where = where or f'{self.ann_file} record {index}'
        if not isinstance(record, dict) or field not in record:
            raise UserError(f'{where}: missing field "{field}"')
        if not isinstance(record[field], kind):
            names = '/'.join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
            raise UserError(f'{where}: field "{field}" should be {names}, got '
                            f'{type(record[field]).__name__} {quote(record[field])}')
        return record[field]

    def parse_record(self, record: dict, index: int) -> list[dict]:
        raise NotImplementedError

    @staticmethod
    def group_by_image(data_list: list[dict]) -> list[dict]:
        """One info per image (the first of its samples), its samples in ``group``, in file
        order: the training grouping of ``refs_per_sample`` / ``questions_per_sample``."""
        by_image: dict[str, list[dict]] = {}
        for info in data_list:
            by_image.setdefault(info['img_path'], []).append(info)
        return [dict(group[0], group=group) for group in by_image.values()]

    @staticmethod
    def without_image(question: str) -> str:
        """A later turn's question: the image is shown once, in the first."""
        return remove_placeholder(question)

    def sample_rng(self, idx: int) -> np.random.Generator:
        """The random generator of sample ``idx`` (see ``seed``)."""
        return np.random.default_rng([self.seed, idx])

    # -- loading -------------------------------------------------------------------------
    def read_annotations(self) -> Any:
        if not osp.isfile(self.ann_file):
            raise UserError(f'annotation file not found: {self.ann_file}')
        try:
            with open(self.ann_file) as f:
                return json.load(f)
        except json.JSONDecodeError as err:
            raise UserError(f'{self.ann_file} is not valid JSON: {err}') from None

    def records(self, annotations: Any) -> list:
        if not isinstance(annotations, list):
            raise UserError(f'{self.ann_file}: expected a JSON list of records')
        return annotations

    def load_data_list(self) -> list[dict]:
        data_list = []
        for index, record in enumerate(self.records(self.read_annotations())):
            try:
                infos = self.parse_record(record, index)
            except UserError as err:
                if self.on_error == 'raise':
                    raise
                self._log_skip(f'skipped: {err}')
                continue
            for info in infos:
                info.update(task=self.task, ann_file=self.ann_file, record_idx=index)
            data_list.extend(infos)
        if self.num_skipped:
            print_log(f'{self.ann_file}: skipped {self.num_skipped} malformed records', 'current',
                      level=logging.WARNING)
        if self.portion < 1:
            keep = int(round(len(data_list) * self.portion))
            order = np.random.default_rng(0).permutation(len(data_list))[:keep]
            data_list = [data_list[i] for i in sorted(order)]
        return data_list

    def prepare_data(self, idx: int) -> Any:
        try:
            return super().prepare_data(idx)
        except UserError as err:
            if self.on_error == 'raise' or self.test_mode:
                raise
            self._log_skip(f'skipped sample {idx}: {err}')
            return None  # BaseDataset then draws another sample

    def _log_skip(self, message: str) -> None:
        """Count a skip; log its reason (the UserError names file, record and field)."""
        self.num_skipped += 1
        if self.num_skipped <= MAX_SKIP_LOGS:
            print_log(message + ('' if self.num_skipped < MAX_SKIP_LOGS else
                                 ' (further skips are only counted)'), 'current',
                      level=logging.WARNING)
