"""Why a trained demo model misses its referring / VQA goals: per-type scores and a [SEG] probe.

    python bench/diagnose_demo.py [--config configs/demo/ullava_tiny_demo.py]
                                  [--checkpoint work_dirs/demo/iter_3600.pth] [--limit 480]
                                  [--cfg-options KEY=VALUE ...]  (those it was trained with)

On the held-out split of the shapes world it prints, as markdown tables:

* RES IoU by kind of expression (plain / positional / relational);
* REC Acc@0.5 (IoU > 0.5, unclipped) with boxes from the predicted masks and from the [LOC] head;
* VQA accuracy by kind of question (count, presence, colour, shape, size, relations);
* how the [SEG] prompts behave: mean cosine similarity of the [SEG] states of *different*
  expressions, how much of the predicted masks changes when the prompts of a batch are shuffled
  (each sample decoded with another sample's [SEG] state), and how well
  a linear probe reads the target's colour and kind back from the (standardised) [SEG] state.

A high cosine, almost no pixels changed and a high probe accuracy together mean the LLM does encode
the target, but only as a small variation that SAM's mask decoder has learnt to ignore.
docs/benchmarks.md records the output with this command.
"""
import argparse
import collections
import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from ullava.demo.language import expression_kind, question_kind  # noqa: E402
from ullava.models.heads.mask_head import remove_islands  # noqa: E402
from ullava.structures import boxes_from_masks  # noqa: E402


def batches(dataset, limit: int, size: int = 16):
    from ullava.datasets import ullava_collate
    n = min(len(dataset), limit)
    for start in range(0, n, size):
        yield ullava_collate([dataset[i] for i in range(start, min(n, start + size))])


def linear_probe(x: np.ndarray, y: np.ndarray, classes: int) -> float:
    """Held-out accuracy of an L2-regularised softmax regression (first 2/3 train, rest test).

    Written here (a few lines of LBFGS) because scikit-learn is not a dependency of ullava."""
    x = torch.tensor((x - x.mean(0)) / (x.std(0) + 1e-6), dtype=torch.float32)
    y = torch.tensor(y)
    n = len(x) * 2 // 3
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x[:n] @ w + b, y[:n]) + 1e-3 * w.pow(2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return float(((x[n:] @ w + b).argmax(1) == y[n:]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--config', default='configs/demo/ullava_tiny_demo.py')
    parser.add_argument('--checkpoint', default=None,
                        help='default: the last checkpoint of work_dirs/demo')
    parser.add_argument('--limit', type=int, default=480, help='samples per task')
    from ullava.engine.launch import add_cfg_options
    add_cfg_options(parser)  # the options the checkpoint was trained with (model.*)
    args = parser.parse_args()
    torch.manual_seed(0)
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import _load_checkpoint

    from ullava.demo.world import COLOURS, KINDS
    from ullava.engine.launch import load_config
    from ullava.models.heads.base import HeadBatch
    from ullava.registry import DATASETS, MODELS
    from ullava.utils import install_compat
    install_compat()
    if args.checkpoint is None:
        args.checkpoint = open('work_dirs/demo/last_checkpoint').read().strip()
    cfg = load_config(args.config, args.cfg_options)
    model = MODELS.build(cfg.model)
    model.load_state_dict(_load_checkpoint(args.checkpoint, map_location='cpu')['state_dict'])
    model.eval()
    val = {d['task']: d for d in cfg.test_dataloader.dataset.datasets}
    with DefaultScope.overwrite_default_scope('ullava'):
        res, rec, vqa = (DATASETS.build(val[t]) for t in ('res', 'rec', 'vqa'))
    box_source = model.box_source

    ious, vqa_hits = collections.defaultdict(list), collections.defaultdict(list)
    vqa_answers = collections.defaultdict(list)  # what the model answers, by kind: its bias
    states, colours, kinds, cosines, changed = [], [], [], [], []
    with torch.no_grad():
        for batch in batches(res, args.limit):
            data = model.data_preprocessor(batch, False)
            for s in model(**data, mode='predict'):
                pred, gt = s.pred_masks[:1].bool(), s.gt_masks[:1].bool()
                union = (pred | gt).sum().item()
                iou = (pred & gt).sum().item() / union if union else 0.0
                ious[expression_kind(s.metainfo['prompt'])].append(iou)
            # the [SEG] states of the ground-truth answers (teacher forcing), as in training
            inputs = model.data_preprocessor(batch, True)['inputs']
            hidden = model.hidden_states(inputs, inputs['input_ids'], inputs['attention_mask'])
            head_batch = HeadBatch(inputs, inputs['input_ids'], hidden, model.token_ids,
                                   model.data_preprocessor)
            head = next(h for h in model.heads.values() if '[SEG]' in h.tokens)
            seg, owner, _ = head_batch.prompts('[SEG]', head.prompt_state)
            unit = F.normalize(seg.float(), dim=-1)
            off_diagonal = ~torch.eye(len(seg), dtype=torch.bool)
            cosines.append((unit @ unit.T)[off_diagonal].mean().item())
            logits = head.mask_logits(head_batch, seg, owner)
            # roll by 3: a record's (up to 3) expressions of one target are neighbours
            shuffled = head.mask_logits(head_batch, seg.roll(3, 0), owner)
            fg = ((logits > 0) | (shuffled > 0)).sum().item()
            changed.append(((logits > 0) != (shuffled > 0)).sum().item() / max(fg, 1))
            for state, sample in zip(seg, batch['data_samples']):
                words = sample.metainfo['prompt'].replace('.', ' ').replace('?', ' ').split()
                colour = [w for w in words if w in COLOURS]
                kind = [w for w in words if w in KINDS]
                if expression_kind(sample.metainfo['prompt']) == 'plain' and len(colour) == 1 \
                        and len(kind) == 1:
                    states.append(state.float().numpy())
                    colours.append(list(COLOURS).index(colour[0]))
                    kinds.append(KINDS.index(kind[0]))
        rec_hits = collections.defaultdict(list)
        for batch in batches(rec, args.limit):
            for source in ('mask', 'head'):  # REC's boxes from the masks, and from [LOC]
                model.box_source = source
                data = model.data_preprocessor(copy.deepcopy(batch), False)
                for s in model(**data, mode='predict'):
                    pred, gt = s.pred_boxes[:1], s.gt_boxes[:1].to(s.pred_boxes)
                    hit = len(pred) and box_iou(pred, gt)[0, 0].item() > 0.5  # strict, unclipped
                    rec_hits[source].append(bool(hit))
                    if source == 'mask':  # how much stray pixels cost: the largest part's box
                        part = remove_islands(s.pred_masks[:1], 'largest')
                        hit = len(part) and box_iou(boxes_from_masks(part), gt)[0, 0].item() > 0.5
                        rec_hits['part'].append(bool(hit))
        model.box_source = box_source
        for batch in batches(vqa, args.limit):
            data = model.data_preprocessor(batch, False)
            for s in model(**data, mode='predict'):
                answer = s.pred_text.strip().lower().rstrip('.')
                kind = question_kind(s.metainfo['prompt'])
                vqa_hits[kind].append(answer == str(s.gt_answer).strip().lower().rstrip('.'))
                vqa_answers[kind].append(answer)

    print('| RES expression | n | mean IoU | prec@0.5 |\n|---|---|---|---|')
    for kind, values in sorted(ious.items()):
        v = np.array(values)
        print(f'| {kind} | {len(v)} | {v.mean():.3f} | {(v >= 0.5).mean():.3f} |')
    print('\n| REC boxes from | n | Acc@0.5 |\n|---|---|---|')
    for source, values in rec_hits.items():
        name = dict(mask='the predicted mask', part="the predicted mask's largest connected part",
                    head='the [LOC] head')[source]
        print(f'| {name} | '
              f'{len(values)} | {np.mean(values):.3f} |')
    print('\n| VQA question | n | accuracy | most frequent answer (share) |\n|---|---|---|---|')
    for kind, values in sorted(vqa_hits.items()):
        top, count = collections.Counter(vqa_answers[kind]).most_common(1)[0]
        print(f'| {kind} | {len(values)} | {np.mean(values):.3f} | {top!r} '
              f'({count / len(values):.2f}) |')
    x = np.stack(states)
    print('\n| [SEG] prompt | value |\n|---|---|')
    print(f'| mean cosine between the [SEG] states of different samples | {np.mean(cosines):.4f} |')
    print('| mask pixels that change when the prompts of a batch are shuffled, '
          f'over the predicted foreground | {np.mean(changed):.4f} |')
    print(f'| linear probe, target colour from [SEG] (chance 0.25; n={len(x)}) | '
          f'{linear_probe(x, np.array(colours), len(COLOURS)):.3f} |')
    print(f'| linear probe, target kind from [SEG] (chance 0.25; n={len(x)}) | '
          f'{linear_probe(x, np.array(kinds), len(KINDS)):.3f} |')


if __name__ == '__main__':
    main()
