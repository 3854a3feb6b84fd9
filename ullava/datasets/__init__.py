from . import transforms  # noqa: F401  (registers the transforms)
from .base import ULLaVADataset
from .collate import ullava_collate
from .llava import LLaVADataset
from .mixture import MixtureDataset

__all__ = ['ULLaVADataset', 'LLaVADataset', 'MixtureDataset', 'ullava_collate']
