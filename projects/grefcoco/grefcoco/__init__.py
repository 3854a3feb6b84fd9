"""gRefCOCO: expressions with several targets or none; ``[REJ]`` says "no such object" (GSVA).
Importing this package registers the dataset, the rejection head and the metric."""
from .dataset import GRefCOCODataset
from .head import RejectHead
from .metric import GRESMetric

__all__ = ['GRESMetric', 'GRefCOCODataset', 'RejectHead']
