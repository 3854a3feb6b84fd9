"""Image and video captioning: COCO captions, CC3M chat.json and TGIF (LLaVADataset); the LM
head answers; BLEU-4 and CIDEr score."""
from ullava.datasets.llava import LLaVADataset
from ullava.evaluation.metrics import CaptionMetric

from .dataset import COCOCaptionDataset

__all__ = ['COCOCaptionDataset', 'LLaVADataset', 'CaptionMetric']
