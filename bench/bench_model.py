"""Tiny-config speed on this machine: train step (forward + backward) and predict latency.

    python bench/bench_model.py [--config configs/demo/ullava_tiny_demo.py] [--repeats 20]

Batches come from the real pipeline on a freshly generated shapes world (the demo's mixture).
Prints medians and writes nothing; docs/benchmarks.md records the figures with this command.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--config', default='configs/demo/ullava_tiny_demo.py')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--new-tokens', type=int, default=16)
    args = parser.parse_args()
    from ullava.datasets import ullava_collate
    from ullava.demo import generate_world
    from ullava.engine.launch import load_config
    from ullava.registry import DATASETS, MODELS

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as root:
        generate_world(root, 'train', num_images=64, num_videos=8, seed=0)
        os.environ['ULLAVA_DEMO_DATA'] = root
        cfg = load_config(args.config)
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope('ullava'):
            data = DATASETS.build(cfg.train_dataloader.dataset)
        batch = ullava_collate([data[i] for i in range(args.batch_size)])
    model = MODELS.build(cfg.model)
    tokens = sum(len(x['input_ids']) for x in batch['inputs'])

    def train_step():
        model.train()
        losses = model(**model.data_preprocessor(batch, True), mode='loss')
        sum(losses.values()).backward()
        model.zero_grad(set_to_none=True)

    def predict():
        model.eval()
        model.generation['max_new_tokens'] = args.new_tokens
        model(**model.data_preprocessor(batch, False), mode='predict')

    step = timed(train_step, args.repeats)
    latency = timed(predict, max(3, args.repeats // 4))
    print(f'config {args.config}, batch {args.batch_size} ({tokens} tokens), '
          f'torch threads {torch.get_num_threads()}')
    print(f'train step (fwd+bwd): median {step * 1000:.1f} ms  -> {args.batch_size / step:.1f} '
          f'samples/s, {tokens / step:.0f} tokens/s')
    print(f'predict ({args.new_tokens} new tokens, greedy, KV cache): median {latency * 1000:.1f} '
          f'ms per batch, {latency / args.batch_size * 1000:.1f} ms per sample')


if __name__ == '__main__':
    main()
