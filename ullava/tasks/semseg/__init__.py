"""Semantic segmentation: label-map datasets, one [SEG] per prompted class through the SAM mask
head, mIoU / aAcc / mAcc through mmseg's IoUMetric on the assembled label map."""
from .dataset import SemanticSegDataset
from .metric import PromptSemSegMetric

__all__ = ['SemanticSegDataset', 'PromptSemSegMetric']
HEAD = 'mask_head'
