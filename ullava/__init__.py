"""ullava: one multimodal LLM for captioning, VQA, segmentation and grounding, on MMEngine."""
__version__ = '0.1.0'
