"""Visual question answering: VQAv2-style records and LLaVA-Instruct conversations; the LM head
answers; VQA accuracy and exact match score."""
from ullava.datasets.llava import LLaVADataset
from ullava.evaluation.metrics import VQAMetric

from .dataset import VQAv2Dataset

__all__ = ['VQAv2Dataset', 'LLaVADataset', 'VQAMetric']
