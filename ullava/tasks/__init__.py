"""Core task plugins. Each folder registers its datasets and names its head and metric."""
from . import caption, rec, res, salient, semseg, vqa  # noqa: F401
from .task_metric import TaskMetric  # noqa: F401
