"""Referring expression comprehension: the RefCOCO-family data of RES (``task='rec'``), answered by
the [LOC] box head (fused with the mask's box, per ``box_source``), scored by Acc@0.5 and bbox AP."""
from ullava.evaluation.metrics import RECMetric
from ullava.tasks.res.dataset import RefCOCODataset

__all__ = ['RefCOCODataset', 'RECMetric']
