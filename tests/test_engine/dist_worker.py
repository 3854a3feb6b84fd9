"""Run under torchrun by test_distributed.py: train the tiny demo a few steps on 2 CPU processes,
save each rank's parameters, then evaluate once with a metric that counts what it gathered."""
import os
import sys

import torch
import torch.distributed as dist
from mmengine.evaluator import BaseMetric

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ullava.engine.launch import build_runner, load_config  # noqa: E402
from ullava.registry import METRICS  # noqa: E402
from ullava.utils import maybe_init_cpu_distributed  # noqa: E402


@METRICS.register_module()
class CountingMetric(BaseMetric):
    default_prefix = 'count'

    def process(self, data_batch, data_samples):
        self.results.extend(int(s['sample_idx']) for s in data_samples)

    def compute_metrics(self, results):
        return dict(samples=len(results), unique=len(set(results)))


def main(out_dir: str) -> None:
    maybe_init_cpu_distributed('pytorch')
    cfg = load_config('configs/demo/ullava_tiny_demo.py', {
        'train_cfg.max_iters': 3, 'train_dataloader.batch_size': 2,
        'test_dataloader.batch_size': 2, 'model.generation.max_new_tokens': 2,
        'default_hooks.checkpoint.interval': 1000})
    cfg.test_dataloader.dataset.datasets = cfg.test_dataloader.dataset.datasets[:1]  # RES only
    cfg.test_evaluator = [dict(type='CountingMetric')]
    cfg.launcher = 'pytorch'
    cfg.work_dir = os.path.join(out_dir, 'work')
    runner = build_runner(cfg)
    runner.train()
    rank = dist.get_rank()
    params = {k: v.detach().cpu() for k, v in runner.model.module.named_parameters()}
    torch.save(params, os.path.join(out_dir, f'params_rank{rank}.pt'))
    metrics = runner.test()
    if rank == 0:
        torch.save(dict(metrics=metrics, size=len(runner.test_dataloader.dataset)),
                   os.path.join(out_dir, 'metrics.pt'))


if __name__ == '__main__':
    main(sys.argv[1])
