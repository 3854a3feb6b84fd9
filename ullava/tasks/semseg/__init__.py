"""Semantic segmentation: label-map datasets (ADE20K, COCO-Stuff, any other) and object parts
(PACO-LVIS, PASCAL-Part), one [SEG] per prompted class through the SAM mask head; mIoU / aAcc /
mAcc through mmseg's IoUMetric on the assembled label map."""
from .dataset import (ADE20KDataset, COCOStuffDataset, SemanticSegDataset,
                      load_class_names)
from .metric import PromptSemSegMetric
from .parts import PartSegDataset

__all__ = ['SemanticSegDataset', 'ADE20KDataset', 'COCOStuffDataset', 'PartSegDataset',
           'PromptSemSegMetric', 'load_class_names']
