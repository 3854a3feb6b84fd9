"""Where a training iteration's time goes: data (by transform), forward (by module), backward,
optimizer. The demo's time budget is spent from this table (docs/benchmarks.md).

    python bench/profile_demo_iteration.py --config configs/demo/ullava_demo.py --iters 30

Runs the config's own training dataloader, model and optimizer wrapper (its embedding cache must
be warm, e.g. after one `make demo`, or the first iterations fill it). Forward times come from
module hooks (a module's time includes its children's); the backward and the optimizer step are
timed whole. Written here because torch's profiler attributes the backward to kernels, not to
our modules, and MMEngine's timer gives the iteration and the data time only.
"""
from __future__ import annotations

import argparse
import collections
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

PARTS = ('vision_tower', 'projector', 'llm', 'mask_head', 'box_head')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='configs/demo/ullava_demo.py')
    parser.add_argument('--iters', type=int, default=30, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--work-dir', default='work_dirs/profile_demo_iteration')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='key=value overrides of the config')
    return parser.parse_args()


def time_transforms(dataset, times: dict) -> None:
    """Wrap every transform of the (mixture's) pipelines to add its time to ``times``."""
    members = getattr(dataset, 'datasets', [dataset])
    for member in members:
        for t in member.pipeline.transforms:
            def timed(results, _orig=t.transform, _name=type(t).__name__):
                start = time.perf_counter()
                out = _orig(results)
                times[f'data: {_name}'] += time.perf_counter() - start
                return out
            t.transform = timed


def time_modules(model, times: dict) -> None:
    from ullava.models.language import decoder_and_head
    starts = {}
    for name in PARTS:
        module = getattr(model, name, None)
        if module is None:
            continue
        if name == 'llm':  # the model runs the LLM's body (the LM head only where supervised)
            module = decoder_and_head(module)[0]
        module.register_forward_pre_hook(lambda m, a, _n=name: starts.__setitem__(_n, time.perf_counter()))
        module.register_forward_hook(
            lambda m, a, o, _n=name: times.__setitem__(f'forward: {_n}', times[f'forward: {_n}']
                                                       + time.perf_counter() - starts[_n]))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.train()
    loader = runner.build_dataloader(cfg.train_dataloader)
    optim = runner.build_optim_wrapper(cfg.optim_wrapper)
    times: dict[str, float] = collections.defaultdict(float)
    time_transforms(loader.dataset, times)
    time_modules(model, times)
    batches = iter(loader)
    for i in range(args.warmup + args.iters):
        if i == args.warmup:
            times.clear()
        t0 = time.perf_counter()
        data = next(batches)
        t1 = time.perf_counter()
        inputs = model.data_preprocessor(data, True)
        t2 = time.perf_counter()
        loss, _ = model.parse_losses(model(**inputs, mode='loss'))
        t3 = time.perf_counter()
        optim.backward(loss)
        t4 = time.perf_counter()
        optim.step()
        optim.zero_grad()
        t5 = time.perf_counter()
        for key, value in (('data (all)', t1 - t0), ('data preprocessor', t2 - t1),
                           ('forward (all)', t3 - t2), ('backward', t4 - t3),
                           ('optimizer step', t5 - t4), ('iteration', t5 - t0)):
            times[key] += value
    print(f'{args.config}, {args.iters} iterations after {args.warmup}, '
          f'{args.threads} threads, batch {cfg.train_dataloader.batch_size}')
    print('| part | ms an iteration |\n|---|---|')
    order = sorted(times, key=lambda k: (k.split(':')[0].split(' ')[0], -times[k]))
    for key in order:
        print(f'| {key} | {1000 * times[key] / args.iters:.1f} |')


if __name__ == '__main__':
    main()
