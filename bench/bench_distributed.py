"""Training throughput of 2 CPU processes (DDP, gloo) against 1, on the tiny demo config.

    python bench/bench_distributed.py [--iters 40] [--batch-size 4]

Both runs use the machine's 2 cores: one process with 2 threads, or two processes with 1 thread
each; the per-process batch is the same, so 2 processes see twice the samples per step.
Throughput = samples per second over the iterations after a warm-up (MMEngine's own `time` per
iteration from vis_data/scalars.json). Prints both and their ratio.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CFG = 'configs/demo/ullava_tiny_demo.py'


def run(nproc: int, work: Path, world: Path, iters: int, batch: int) -> float:
    env = dict(os.environ, ULLAVA_DEMO_DATA=str(world), OMP_NUM_THREADS=str(2 // nproc))
    opts = ['--cfg-options', f'train_cfg.max_iters={iters}', f'train_dataloader.batch_size={batch}',
            'default_hooks.logger.interval=1', f'default_hooks.checkpoint.interval={iters * 10}']
    if nproc == 1:
        cmd = [sys.executable, 'tools/train.py', CFG, '--work-dir', str(work), *opts]
    else:
        cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
               '--master_port=29655', 'tools/train.py', CFG, '--launcher', 'pytorch',
               '--work-dir', str(work), *opts]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    log = sorted(work.glob('*/vis_data/scalars.json'))[-1]
    times = [json.loads(line)['time'] for line in log.read_text().splitlines()
             if 'time' in json.loads(line)]
    step = statistics.median(times[len(times) // 4:])  # drop the warm-up quarter
    return nproc * batch / step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--iters', type=int, default=40)
    parser.add_argument('--batch-size', type=int, default=4)
    args = parser.parse_args()
    from ullava.demo import generate_world
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / 'world'
        generate_world(world, 'train', num_images=200, num_videos=20, seed=0)
        generate_world(world, 'val', num_images=12, num_videos=2, seed=0)
        one = run(1, Path(tmp) / 'one', world, args.iters, args.batch_size)
        two = run(2, Path(tmp) / 'two', world, args.iters, args.batch_size)
    print(f'1 process x 2 threads: {one:.1f} samples/s')
    print(f'2 processes x 1 thread: {two:.1f} samples/s')
    print(f'ratio (2 processes / 1): {two / one:.2f}')


if __name__ == '__main__':
    main()
