"""Vision-to-language projector, named as the reference names them.

``'mlp'`` is ONE ``nn.Linear``: the reference's ``build_vision_projector`` gives its ``'mlp'``
type a single linear layer, and released u-LLaVA weights (``llm.vision_projector.{weight,bias}``)
use it. ``'linear'`` is the same layer under its plain name. ``'mlp2x'`` (and ``'mlp3x'``, ...)
is LLaVA-1.5's Linear -> GELU -> Linear (-> GELU -> Linear ...), keys ``0``, ``2``, ...
"""
import re

from torch import nn

from ullava.utils import UserError


def build_projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    if kind in ('linear', 'mlp'):
        return nn.Linear(in_dim, out_dim)
    deep = re.fullmatch(r'mlp(\d+)x', kind)
    if deep and int(deep.group(1)) >= 2:
        layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(int(deep.group(1)) - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        return nn.Sequential(*layers)
    raise UserError(f"projector type must be 'linear', 'mlp' (one Linear, the reference's) or "
                    f"'mlp2x' (Linear-GELU-Linear), got {kind!r}")
