"""What `make demo` leaves behind: a loss curve, a grid of predictions, a table of metrics."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

# The goals of the embedded default on its held-out split: (metric key, goal, higher is better)
GOALS = [('res/cIoU', 0.70, True), ('rec/Acc@0.5', 0.80, True), ('vqa/accuracy', 0.90, True),
         ('semseg/mIoU', 0.60, True), ('salient/MAE', 0.05, False), ('caption/CIDEr', 1.0, True)]


def read_scalars(work_dir: str | Path) -> list[dict]:
    """MMEngine's LocalVisBackend log of the newest run in ``work_dir``."""
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not files:
        return []
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def plot_loss_curve(work_dir: str | Path, out_file: str | Path) -> Path:
    rows = [r for r in read_scalars(work_dir) if 'loss' in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    keys = sorted({k for r in rows for k in r if k.startswith('loss')})
    for key in keys:
        pts = [(r['step'], r[key]) for r in rows if key in r]
        ax.plot(*zip(*pts), label=key, linewidth=2 if key == 'loss' else 1)
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss')
    ax.set_yscale('log')
    ax.set_title('ullava tiny demo: training losses')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)
    return Path(out_file)


@torch.no_grad()
def plot_predictions(cfg, checkpoint: str | Path, out_file: str | Path,
                     per_task: int = 2, seed: int = 0) -> Path:
    """Run the model on a few held-out samples of every task and draw them in a grid."""
    from ullava.apis import ULLaVAInferencer
    from ullava.apis.infer import read_first_frame, read_image_file
    from ullava.registry import DATASETS
    from ullava.visualization import overlay
    from mmengine.registry import DefaultScope
    model = ULLaVAInferencer(cfg, checkpoint, device='cpu').model
    with DefaultScope.overwrite_default_scope('ullava'):  # datasets build their transforms by scope
        mixture = DATASETS.build(cfg.test_dataloader.dataset)
    rng = np.random.default_rng(seed)
    picks = []
    for dataset in mixture.datasets:
        for i in rng.choice(len(dataset), min(per_task, len(dataset)), replace=False):
            picks.append(dataset[int(i)])
    data = model.data_preprocessor(dict(inputs=[p['inputs'] for p in picks],
                                        data_samples=[p['data_samples'] for p in picks]), False)
    samples = model(**data, mode='predict')
    cols = 4
    rows = -(-len(samples) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 3.6))
    for ax, sample in zip(axes.flat, samples):
        meta = sample.metainfo
        path = meta.get('img_path') or meta.get('video_path')
        image = read_image_file(path) if meta.get('img_path') else read_first_frame(path)
        drawn = overlay(image, sample.get('pred_masks'), sample.get('pred_boxes'),
                        sample.get('gt_masks'))
        ax.imshow(drawn, interpolation='nearest')
        prompt = meta.get('prompt', '').replace('<image>', '').replace('<video>', '').strip()
        answer = sample.pred_text.replace('[SEG]', '[S]').replace('[LOC]', '[L]')
        ax.set_title(f'[{meta.get("task")}] {prompt[:48]}\n-> {answer[:48]}', fontsize=6.5)
        ax.axis('off')
    for ax in list(axes.flat)[len(samples):]:
        ax.axis('off')
    fig.suptitle('held-out predictions (fill: predicted mask, box: predicted box, '
                 'green outline: ground truth)', fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=130)
    plt.close(fig)
    return Path(out_file)


def goal_table(metrics: dict) -> tuple[str, bool]:
    """A terminal table of every metric, the demo goals marked; and whether all goals are met."""
    lines = [f'{"metric":28s} {"value":>9s} {"goal":>9s}  met']
    all_met = True
    goals = {k: (g, hi) for k, g, hi in GOALS}
    for key in sorted(metrics):
        value = metrics[key]
        if key in goals:
            goal, higher = goals[key]
            met = value >= goal if higher else value <= goal
            all_met &= met
            lines.append(f'{key:28s} {value:9.4f} {("≥" if higher else "≤") + format(goal, ".2f"):>9s}'
                         f'  {"yes" if met else "NO"}')
        elif isinstance(value, (int, float)):
            lines.append(f'{key:28s} {value:9.4f}')
        else:  # what a metric says about itself (caption/tokenizer, rec/definition)
            lines.append(f'{key:28s} {value!s:>9}')
    return '\n'.join(lines), all_met
