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


def pick_samples(mixture, per_task: int = 1, seed: int = 0) -> list[dict]:
    """Held-out samples to draw: ``per_task`` of every task, and for RES one per kind of
    expression (plain / positional / relational) and for VQA one per kind of question."""
    from ullava.demo.language import expression_kind, question_kind
    rng = np.random.default_rng(seed)
    picks = []
    for dataset in mixture.datasets:
        order = rng.permutation(len(dataset))
        task = dataset[0]['data_samples'].metainfo.get('task')
        split = {'res': expression_kind, 'vqa': question_kind}.get(task)
        if split is None:
            picks += [dataset[int(i)] for i in order[:per_task]]
            continue
        seen: dict[str, int] = {}
        for i in order[:400]:  # enough to meet every kind; the pipeline runs on the picks only
            turns = dataset.get_data_info(int(i))['conversations']
            kind = split(turns[-2]['value'] if len(turns) > 1 else '')  # the prompt, as packed
            if seen.get(kind, 0) < per_task:
                seen[kind] = seen.get(kind, 0) + 1
                picks.append(dataset[int(i)])
    return picks


@torch.no_grad()
def plot_predictions(cfg, checkpoint: str | Path, out_file: str | Path,
                     per_task: int = 1, seed: int = 0) -> Path:
    """Run the model on held-out samples (every task; every kind of referring expression and of
    VQA question) and draw them in a grid: prompt, generated answer, ground truth."""
    from ullava.apis import ULLaVAInferencer
    from ullava.apis.infer import read_first_frame, read_image_file
    from ullava.registry import DATASETS
    from ullava.visualization import overlay
    from mmengine.registry import DefaultScope
    model = ULLaVAInferencer(cfg, checkpoint, device='cpu').model
    with DefaultScope.overwrite_default_scope('ullava'):  # datasets build their transforms by scope
        mixture = DATASETS.build(cfg.test_dataloader.dataset)
    picks = pick_samples(mixture, per_task, seed)
    samples = []
    for first in range(0, len(picks), 8):
        chunk = picks[first:first + 8]
        data = model.data_preprocessor(dict(inputs=[p['inputs'] for p in chunk],
                                            data_samples=[p['data_samples'] for p in chunk]), False)
        samples += model(**data, mode='predict')
    cols = 5
    rows = -(-len(samples) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 3.9), squeeze=False)
    for ax, sample in zip(axes.flat, samples):
        meta = sample.metainfo
        path = meta.get('img_path') or meta.get('video_path')
        image = read_image_file(path) if meta.get('img_path') else read_first_frame(path)
        drawn = overlay(image, sample.get('pred_masks'), sample.get('pred_boxes'),
                        sample.get('gt_masks'))
        ax.imshow(drawn, interpolation='nearest')
        prompt = meta.get('prompt', '').replace('<image>', '').replace('<video>', '').strip()
        short = {'[SEG]': '[S]', '[LOC]': '[L]'}
        answer, gt = sample.pred_text, str(sample.get('gt_answer', ''))
        for long_, abbr in short.items():
            answer, gt = answer.replace(long_, abbr), gt.replace(long_, abbr)
        ax.set_title(f'[{meta.get("task")}] {prompt[:46]}\n-> {answer[:46]}\nGT: {gt[:46]}',
                     fontsize=6.2)
        ax.axis('off')
    for ax in list(axes.flat)[len(samples):]:
        ax.axis('off')
    fig.suptitle('held-out predictions, answers generated (fill: predicted mask, box: predicted '
                 'box, green outline: ground-truth mask)', fontsize=8)
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
