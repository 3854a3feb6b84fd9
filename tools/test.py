"""Evaluate a checkpoint: ``python tools/test.py CONFIG CKPT [--work-dir DIR] [--show-dir DIR]
[--out FILE.jsonl]``.

Writes the final metrics to ``<work-dir>/metrics.json``; with ``--show-dir`` also one PNG per test
sample with its prediction drawn against the ground truth; with ``--out`` one JSON line per test
sample (prompt, generated text, masks as COCO RLE, boxes, scores, image path; see
:func:`ullava.engine.hooks.dump_predictions_hook.prediction_record`).
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from ullava.engine.launch import (StartupLog, add_cfg_options, build_runner,  # noqa: E402
                                  cli_main, load_config)
from ullava.utils import UserError, maybe_init_cpu_distributed  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a ullava checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where metrics.json and logs go (default: work_dirs/<config>)')
    parser.add_argument('--show-dir', help='draw every test prediction against its ground truth '
                        'into this folder (one PNG per sample)')
    parser.add_argument('--out', metavar='FILE.jsonl',
                        help='dump every prediction, one JSON line per test sample: prompt, text, '
                             'masks (COCO RLE, counts as str), boxes (xyxy pixels), scores, '
                             'image path')
    add_cfg_options(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def to_jsonable(value):
    """Metrics may be tensors or numpy scalars; JSON wants plain numbers."""
    if hasattr(value, 'item') and getattr(value, 'ndim', 0) == 0:
        return value.item()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def add_show_dir(cfg, show_dir: str) -> None:
    """Draw predictions through ULLaVAVisualizer: make it the runner's visualizer (keeping the
    config's vis_backends) and add the hook that calls it after every test iteration."""
    visualizer = dict(cfg.get('visualizer') or dict(name='visualizer'))
    visualizer['type'] = 'ULLaVAVisualizer'
    cfg.visualizer = visualizer
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'ULLaVAVisualizationHook']
    cfg.custom_hooks = hooks + [dict(type='ULLaVAVisualizationHook', out_dir=show_dir)]


@cli_main
def main() -> None:
    args = parse_args()
    StartupLog.start()  # nothing on the console until the run starts: an error comes first
    cfg = load_config(args.config, args.cfg_options)
    if args.out is not None and not args.out.endswith('.jsonl'):
        raise UserError(f'--out must name a .jsonl file (one JSON line per sample), got {args.out}')
    if not osp.isfile(args.checkpoint):
        raise UserError(f'checkpoint not found: {args.checkpoint}')
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        add_show_dir(cfg, args.show_dir)
    if args.out:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='DumpPredictionsHook', out_file=args.out)]
    maybe_init_cpu_distributed(args.launcher)
    runner = build_runner(cfg)
    metrics = to_jsonable(runner.test())
    if runner.rank == 0:
        os.makedirs(cfg.work_dir, exist_ok=True)
        out = osp.join(cfg.work_dir, 'metrics.json')
        with open(out, 'w') as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
        print(f'metrics written to {out}')


if __name__ == '__main__':
    main()
