from .formatting import PackULLaVAInputs, TokenizeConversation
from .loading import LoadImage, LoadMasks, LoadVideo
from .resize import ResizeForCLIP, ResizeForSAM

__all__ = ['LoadImage', 'LoadVideo', 'LoadMasks', 'ResizeForCLIP', 'ResizeForSAM',
           'TokenizeConversation', 'PackULLaVAInputs']
