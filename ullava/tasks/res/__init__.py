"""Referring expression segmentation: RefCOCO-family data, the SAM mask head, cIoU / gIoU."""
from ullava.evaluation.metrics import RESMetric

from .dataset import RefCOCODataset
from .original import RefCOCOOriginalDataset

__all__ = ['RefCOCODataset', 'RefCOCOOriginalDataset', 'RESMetric']
