"""Instance segmentation: COCO instances JSON, one [SEG] per instance through the SAM mask head,
COCO segm AP through mmdet's CocoMetric. Importing this package registers the dataset and metric."""
from .dataset import InstanceSegDataset
from .metric import InstanceSegMetric

__all__ = ['InstanceSegDataset', 'InstanceSegMetric']
