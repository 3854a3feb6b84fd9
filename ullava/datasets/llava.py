"""LLaVA's conversation format, shared by CC3M ``chat.json``, LLaVA-Instruct-150K and TGIF."""
from __future__ import annotations

from ullava.models.tokens import VIDEO
from ullava.registry import DATASETS

from .base import ULLaVADataset


@DATASETS.register_module()
class LLaVADataset(ULLaVADataset):
    """Records ``{"id", "image" | "video" | "gif", "conversations": [{"from", "value"}, ...]}``.

    A record without ``image``/``video``/``gif`` is a text-only conversation. ``gif`` is u-LLaVA's
    TGIF field; its text has no ``<video>`` placeholder, and, as the reference's ``TgifDataset``
    does, the video tokens are appended to the first turn. In test mode the last assistant turn is
    the reference (``gt_answers`` and ``gt_captions``).
    """

    def parse_record(self, record: dict, index: int) -> list[dict]:
        conversations = self.require(record, 'conversations', index, list)
        info = dict(conversations=conversations, img_id=record.get('id', index))
        if record.get('image') is not None:
            info['img_path'] = self.media_path(record, 'image', index)
        video_field = next((f for f in ('video', 'gif') if record.get(f) is not None), None)
        if video_field is not None:
            info['video_path'] = self.media_path(record, video_field, index)
            if conversations and not any(VIDEO in str(turn.get('value', ''))
                                         for turn in conversations if isinstance(turn, dict)):
                first = self.require(conversations[0], 'value', index, str,
                                     f'{self.ann_file} record {index} conversations[0]')
                conversations = [dict(conversations[0], value=first + VIDEO), *conversations[1:]]
                info['conversations'] = conversations
        if self.test_mode and conversations:
            last = conversations[-1].get('value', '') if isinstance(conversations[-1], dict) else ''
            info['gt_answers'] = [last]
            info['gt_captions'] = [last]
        return [info]
