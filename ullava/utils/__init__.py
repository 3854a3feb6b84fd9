from .compat import (install_compat, load_external_checkpoint, mark_work_dir,
                     maybe_init_cpu_distributed)
from .errors import UserError

__all__ = ['install_compat', 'load_external_checkpoint', 'mark_work_dir',
           'maybe_init_cpu_distributed', 'UserError']
