from .data_sample import ULLaVADataSample

__all__ = ['ULLaVADataSample']
