from .boxes import (boxes_from_masks, denormalize_boxes, denormalize_points, normalize_boxes,
                    normalize_points)
from .data_sample import ULLaVADataSample
from .targets import packed_fields, register_target_field, target_fields

__all__ = ['ULLaVADataSample', 'boxes_from_masks', 'denormalize_boxes', 'denormalize_points',
           'normalize_boxes', 'normalize_points', 'packed_fields', 'register_target_field',
           'target_fields']
