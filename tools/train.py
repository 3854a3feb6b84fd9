"""Train a ullava model: ``python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]``.

Nothing is printed until the run starts: a mistake in the config or the data is the first line
you read (``error: ...``); the environment and the full config go to the log file in
``WORK_DIR/<timestamp>/``.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from ullava.engine.launch import (StartupLog, add_cfg_options, apply_amp,  # noqa: E402
                                  build_runner, cli_main, load_config)
from ullava.utils import UserError, mark_work_dir, maybe_init_cpu_distributed  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a ullava model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir if no '
                             'path is given')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (needs a GPU): AmpOptimWrapper, or bf16 (fp16 where '
                             'the GPU has no bf16) in a DeepSpeed strategy')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log to TensorBoard (adds TensorboardVisBackend to '
                             'visualizer.vis_backends; events in WORK_DIR/<timestamp>/vis_data/)')
    add_cfg_options(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def add_tensorboard(cfg) -> None:
    """Add MMEngine's TensorboardVisBackend to the visualizer (once), keeping its other backends."""
    visualizer = cfg.get('visualizer') or dict(type='Visualizer', name='visualizer')
    backends = list(visualizer.get('vis_backends') or [dict(type='LocalVisBackend')])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer


@cli_main
def main() -> None:
    args = parse_args()
    StartupLog.start()  # nothing on the console until the run starts: an error comes first
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise UserError('--amp needs a CUDA GPU; none is available on this machine')
        from mmengine.logging import print_log
        print_log(apply_amp(cfg, torch.cuda.is_bf16_supported()), logger='current')
    if args.tensorboard:
        add_tensorboard(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise UserError(f'--resume: checkpoint not found: {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume
    maybe_init_cpu_distributed(args.launcher)
    mark_work_dir(cfg.work_dir)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
