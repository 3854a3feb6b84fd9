"""Runner set-up shared by the tools (config loading, runner choice, user-facing errors)."""
from . import hooks  # noqa: F401  (registers ullava's hooks in ullava.registry.HOOKS)
from .schedulers import WarmupRatioCosineAnnealingLR, WarmupRatioLinearLR  # noqa: F401
