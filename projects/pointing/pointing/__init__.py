"""Pointing: a ``[PT]`` token per point, the point head, its dataset, metric and drawing.
Importing this package registers them (``custom_imports``); no core file knows of it."""
from .dataset import PointingDataset, PointTargets
from .drawing import draw_points
from .head import PointHead, PointL1Loss
from .metric import PointingMetric

__all__ = ['PointHead', 'PointL1Loss', 'PointTargets', 'PointingDataset', 'PointingMetric',
           'draw_points']
