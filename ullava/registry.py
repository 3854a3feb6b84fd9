"""ullava's registries: children of MMEngine's root registries.

Configs use ``default_scope = 'ullava'``. Each registry names the modules that
fill it (``locations``), so a config never fails because a module was not
imported: the registry imports them on first lookup.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

_TASKS = ['ullava.tasks']

MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['ullava.models'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['ullava.engine'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['ullava.datasets'] + _TASKS)
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['ullava.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS,
                      locations=['ullava.datasets.transforms'] + _TASKS)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, locations=['ullava.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['ullava.evaluation'] + _TASKS)
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['ullava.evaluation'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['ullava.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['ullava.engine'])
OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['ullava.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['ullava.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      locations=['ullava.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
                            locations=['ullava.engine'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, locations=['ullava.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, locations=['ullava.visualization'])
# none of our own: the child only lets the Runner's scoped lookup of `LogProcessor` succeed
# without MMEngine's "Failed to search registry with scope ullava" warning at every start
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS)
# The model's heads (``ULLaVA(heads=dict(name=dict(type=...)))``). A root of its own, not a child
# of MMEngine's MODELS: MODELS already has the child of scope 'ullava' (above), and MMEngine
# resolves a build under ``default_scope='ullava'`` to that child, so a second 'ullava' child
# would never be searched. Plugins add theirs with ``@HEADS.register_module()``.
HEADS = Registry('head', scope='ullava', locations=['ullava.models.heads'])
