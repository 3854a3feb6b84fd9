from .data_preprocessor import ULLaVADataPreprocessor
from .language import build_llm, build_tokenizer, special_token_ids
from .ullava import ULLaVA
from .vision import CLIPVisionTower

__all__ = ['ULLaVA', 'ULLaVADataPreprocessor', 'CLIPVisionTower', 'build_llm', 'build_tokenizer',
           'special_token_ids']
