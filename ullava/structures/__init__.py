from .boxes import denormalize_boxes, normalize_boxes
from .data_sample import ULLaVADataSample

__all__ = ['ULLaVADataSample', 'denormalize_boxes', 'normalize_boxes']
