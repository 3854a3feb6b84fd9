"""LLaVA's conversation format, shared by CC3M ``chat.json``, LLaVA-Instruct-150K and TGIF."""
from __future__ import annotations

from ullava.registry import DATASETS

from .base import ULLaVADataset


@DATASETS.register_module()
class LLaVADataset(ULLaVADataset):
    """Records ``{"id", "image" | "video", "conversations": [{"from", "value"}, ...]}``.

    A record without ``image``/``video`` is a text-only conversation. In test mode the last
    assistant turn is the reference (``gt_answers`` and ``gt_captions``).
    """

    def parse_record(self, record: dict, index: int) -> list[dict]:
        conversations = self.require(record, 'conversations', index, list)
        info = dict(conversations=conversations, img_id=record.get('id', index))
        if record.get('image') is not None:
            info['img_path'] = self.media_path(record, 'image', index)
        if record.get('video') is not None:
            info['video_path'] = self.media_path(record, 'video', index)
        if self.test_mode and conversations:
            last = conversations[-1].get('value', '') if isinstance(conversations[-1], dict) else ''
            info['gt_answers'] = [last]
            info['gt_captions'] = [last]
        return [info]
