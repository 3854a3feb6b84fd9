"""Vision-to-language projector: ``linear`` or ``mlp`` (Linear -> GELU -> Linear)."""
from torch import nn

from ullava.utils import UserError


def build_projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    if kind == 'linear':
        return nn.Linear(in_dim, out_dim)
    if kind == 'mlp':
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise UserError(f"projector type must be 'linear' or 'mlp', got {kind!r}")
