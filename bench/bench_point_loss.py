"""The mask head's loss, dense against point-sampled (``mask_head.loss_points``, issue #15).

    python bench/bench_point_loss.py [--repeats 10] [--threads 2] [--num-points 12544]

Times the loss only: forward + backward of BCE (weight 2.0) + Dice (weight 0.5) from fixed mask
logits that require grad, at the reference's sizes: the SAM frame (``loss_frame='sam'``, k masks
of 1024 x 1024) and the original frame (``'original'``, k masks of 480 x 640), k = 1..4. The
point variant runs the head's own :meth:`SAMMaskHead.sample_loss_points` (Mask2Former's
importance sampling, mmcv's ``point_sample``) with Mask2Former's ratios. Medians of
``--repeats`` alternated repeats (the order of the two variants flips every repeat), after one
warm-up each. Prints a markdown table; writes nothing.
"""
import argparse
import os
import statistics
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

FRAMES = {'sam': (1024, 1024), 'original': (480, 640)}


def masks(k: int, h: int, w: int) -> torch.Tensor:
    """k boolean ellipses of different sizes and places."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing='ij')
    out = [((y - 0.3 - 0.1 * i) / (0.15 + 0.05 * i)) ** 2 + ((x - 0.5) / 0.25) ** 2 < 1
           for i in range(k)]
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--num-points', type=int, default=12544)
    parser.add_argument('--masks', type=int, nargs='+', default=[1, 2, 3, 4])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ullava.models.heads.mask_head import SAMMaskHead, check_loss_points
    from ullava.models.losses import MaskBCELoss, MaskDiceLoss

    bce, dice = MaskBCELoss(loss_weight=2.0), MaskDiceLoss(loss_weight=0.5)
    # the head's method needs only its ``loss_points``: no SAM is built for the benchmark
    head = SimpleNamespace(loss_points=check_loss_points(dict(num_points=args.num_points)))

    def step(logits: torch.Tensor, gt: torch.Tensor, points: bool) -> None:
        logits.grad = None
        pred, target = logits, gt
        if points:
            pred, target = SAMMaskHead.sample_loss_points(head, logits, gt)
        loss = bce(pred, target, reduction_override='none').mean() + \
            dice(pred, target, reduction_override='none').mean()
        loss.backward()

    torch.manual_seed(0)
    rows = []
    for frame, (h, w) in FRAMES.items():
        for k in args.masks:
            logits = (torch.randn(k, h, w) * 3).requires_grad_()
            gt = masks(k, h, w)
            times = {False: [], True: []}
            for variant in (False, True):
                step(logits, gt, variant)  # warm-up
            for r in range(args.repeats):
                for variant in ((False, True) if r % 2 == 0 else (True, False)):
                    start = time.perf_counter()
                    step(logits, gt, variant)
                    times[variant].append(time.perf_counter() - start)
            dense, point = (statistics.median(times[v]) * 1e3 for v in (False, True))
            rows.append(f'| {frame} | {h} x {w} | {k} | {dense:.2f} ms | {point:.2f} ms | '
                        f'{dense / point:.1f}x |')
    cmd = ' '.join(['python', 'bench/bench_point_loss.py', *sys.argv[1:]])
    lp = head.loss_points
    print(f'`{cmd}` (torch {torch.__version__}, {args.threads} threads; points: num_points '
          f'{lp["num_points"]}, oversample_ratio {lp["oversample_ratio"]}, '
          f'importance_sample_ratio {lp["importance_sample_ratio"]})\n')
    print(f'| loss_frame | mask size | k masks | dense (median of {args.repeats}) | points | '
          f'dense / points |')
    print('|---|---|---|---|---|---|')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
