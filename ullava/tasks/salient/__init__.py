"""Salient object segmentation: MSRA-style JSON and DUTS-style folders; the SAM mask head answers;
MAE, max F-measure and S-measure score (on the mask's sigmoid scores)."""
from ullava.evaluation.metrics import SalientMetric

from .dataset import SalientDataset, SalientFolderDataset

__all__ = ['SalientDataset', 'SalientFolderDataset', 'SalientMetric']
