"""Evaluation for ullava: MMEngine metrics, registered in ``ullava.registry.METRICS``."""
from . import metrics  # noqa: F401  (importing registers the metrics)
from .metrics import *  # noqa: F401,F403
from .metrics import __all__  # noqa: F401
