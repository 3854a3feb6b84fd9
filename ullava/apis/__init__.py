from .inferencer import ULLaVAInferencer

__all__ = ['ULLaVAInferencer']
