"""MMEngine metrics for every ullava task (importing this module registers them)."""
from .caption_metric import CaptionMetric
from .rec_metric import RECMetric
from .res_metric import RESMetric
from .salient_metric import SalientMetric
from .semseg_metric import SemSegMetric
from .vqa_metric import VQAMetric

__all__ = ['CaptionMetric', 'RECMetric', 'RESMetric', 'SalientMetric', 'SemSegMetric',
           'VQAMetric']
