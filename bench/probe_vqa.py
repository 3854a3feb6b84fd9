"""How many VQA answers does a tiny LLM need to read a vision tower's tokens? A fast probe.

    python bench/probe_vqa.py --config configs/demo/ullava_demo.py [--steps 2000] [--batch 8]
        [--questions-per-sample 1] [--layers 2] [--hidden 128] [--cfg-options KEY=VALUE ...]

In the demo, VQA shares every iteration with five other tasks, and one training run takes ten
minutes or more; this trains only what VQA needs, in a minute or two: the config's projector
kind (a fresh ``mlp2x``) and a fresh LLaMA of the given size over ``[visual tokens; question
tokens; "ASSISTANT:"]``, predicting the answer word at the last position (a classifier over the
split's answers: the LM's first answer token, without the rest of the vocabulary). The visual
tokens are the config's own vision tower's, computed once per image (through its embedding cache
where it has one), so ``--cfg-options model.vision_tower.pool=1`` probes another tower.

``--questions-per-sample k`` asks up to k questions of one image in one sequence, each followed by
its answer's words, every answer supervised (``VQAv2Dataset(questions_per_sample=k)``'s
multi-turn layout): ``--batch`` then counts images, not questions.

Prints the held-out accuracy (exact match with the most common answer: the world's answers are
unanimous, so it equals the VQAv2 accuracy) overall and by kind of question
(``ullava.demo.language.QUESTION_KINDS``). docs/benchmarks.md records the runs with their
commands. Written for the shapes world; any VQAv2-format config with a ``VQAv2Dataset`` in its
training mixture and test set works.
"""
import argparse
import collections
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


def leaf_datasets(cfg_dataset: dict) -> list[dict]:
    return [d for c in cfg_dataset.get('datasets', [cfg_dataset]) for d in leaf_datasets(c)] \
        if 'datasets' in cfg_dataset else [cfg_dataset]


def vqa_split(cfg, dataloader: str) -> dict:
    """The first VQAv2Dataset of a dataloader's (mixture) dataset, in test mode: one record per
    question, with all its answers."""
    found = [d for d in leaf_datasets(cfg[dataloader].dataset) if d.get('type') == 'VQAv2Dataset']
    if not found:
        raise SystemExit(f'{dataloader} of the config has no VQAv2Dataset')
    return dict(found[0], test_mode=True, questions_per_sample=1)


@torch.no_grad()
def tower_tokens(model, dataset) -> tuple[torch.Tensor, list[int], list[str], list[str]]:
    """The tower's tokens of every distinct image, and per question its image, text and answer."""
    from ullava.datasets import ullava_collate
    stream = 'sam_images' if getattr(model.vision_tower, 'image_stream', 'clip') == 'sam' \
        else 'images'
    ordinal, firsts = {}, []  # image -> its index; each image's first question
    image_of, questions, answers = [], [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if info['img_path'] not in ordinal:
            ordinal[info['img_path']] = len(firsts)
            firsts.append(i)
        image_of.append(ordinal[info['img_path']])
        questions.append(info['question'])
        answers.append(info['answer'])  # the dataset's: the most common annotator answer
    tokens = []
    for b in range(0, len(firsts), 16):
        batch = ullava_collate([dataset[i] for i in firsts[b:b + 16]])
        inputs = model.data_preprocessor(batch, False)['inputs']
        tokens.append(model.vision_tower(inputs[stream]).float())
    return torch.cat(tokens), image_of, questions, answers


class Probe(nn.Module):
    """A projector and a LLaMA over [visual tokens; text], a classifier at chosen positions."""

    def __init__(self, visual_dim: int, vocab: int, classes: int, layers: int, hidden: int,
                 heads: int) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaModel
        self.llm = LlamaModel(LlamaConfig(
            hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=heads, vocab_size=vocab,
            max_position_embeddings=1024))
        self.projector = nn.Sequential(nn.Linear(visual_dim, hidden), nn.GELU(),
                                       nn.Linear(hidden, hidden))
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, visual: torch.Tensor, ids: list[list[int]],
                positions: list[list[int]]) -> torch.Tensor:
        """visual [B,N,C]; ids: each sample's text tokens; positions: where (in the text) to
        classify. Returns logits [sum of len(positions), classes]."""
        length = max(map(len, ids))
        text = torch.zeros(len(ids), length, dtype=torch.long)
        mask = torch.zeros(len(ids), visual.shape[1] + length, dtype=torch.long)
        mask[:, :visual.shape[1]] = 1
        for j, row in enumerate(ids):  # right padding: causal attention never reads it
            text[j, :len(row)] = torch.tensor(row)
            mask[j, visual.shape[1]:visual.shape[1] + len(row)] = 1
        embeds = torch.cat([self.projector(visual), self.llm.embed_tokens(text)], 1)
        hidden = self.llm(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        rows = [j for j, p in enumerate(positions) for _ in p]
        cols = [visual.shape[1] + q for p in positions for q in p]
        return self.classifier(hidden[rows, cols])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default='configs/demo/ullava_demo.py')
    parser.add_argument('--steps', type=int, default=2000)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--questions-per-sample', type=int, default=1)
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--hidden', type=int, default=128)
    parser.add_argument('--heads', type=int, default=4)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--seed', type=int, default=0)
    from ullava.engine.launch import add_cfg_options
    add_cfg_options(parser)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    from mmengine.registry import DefaultScope

    from ullava.demo.language import question_kind
    from ullava.engine.launch import load_config
    from ullava.registry import DATASETS, MODELS
    from ullava.utils import install_compat
    install_compat()
    cfg = load_config(args.config, args.cfg_options)
    model = MODELS.build(cfg.model).eval()
    with DefaultScope.overwrite_default_scope('ullava'):
        train_set = DATASETS.build(vqa_split(cfg, 'train_dataloader'))
        val_set = DATASETS.build(vqa_split(cfg, 'test_dataloader'))
    start = time.time()
    train, val = tower_tokens(model, train_set), tower_tokens(model, val_set)
    print(f'tower tokens: {len(train[0])} + {len(val[0])} images, {tuple(train[0].shape[1:])} '
          f'each ({time.time() - start:.0f} s)', flush=True)
    tokenizer = model.tokenizer
    classes = sorted(set(train[3]) | set(val[3]))
    label = {a: i for i, a in enumerate(classes)}
    prompt_ids = {q: tokenizer(q + ' ASSISTANT:', add_special_tokens=False)['input_ids']
                  for q in set(train[2]) | set(val[2])}
    answer_ids = {a: tokenizer(' ' + a + ' USER:', add_special_tokens=False)['input_ids']
                  for a in classes}
    probe = Probe(train[0].shape[-1], len(tokenizer), len(classes), args.layers, args.hidden,
                  args.heads)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=args.lr, weight_decay=0.0)
    # the demo's schedule: 100 iterations of linear warm-up, then cosine
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 100) * (
        0.5 * (1 + math.cos(math.pi * s / args.steps))))
    by_image = collections.defaultdict(list)
    for q, image in enumerate(train[1]):
        by_image[image].append(q)
    group = args.questions_per_sample

    def sequence(questions: list[int], split) -> tuple[list[int], list[int], list[int]]:
        ids, positions, labels = [], [], []
        for q in questions:
            ids += prompt_ids[split[2][q]]
            positions.append(len(ids) - 1)
            labels.append(label[split[3][q]])
            ids += answer_ids[split[3][q]]
        return ids, positions, labels

    start = time.time()
    probe.train()
    for step in range(args.steps):
        if group == 1:
            picks = [[q] for q in torch.randint(len(train[1]), (args.batch,)).tolist()]
        else:
            images = torch.randint(len(by_image), (args.batch,)).tolist()
            picks = [[by_image[i][j] for j in torch.randperm(len(by_image[i]))[:group].tolist()]
                     for i in images]
        seqs = [sequence(p, train) for p in picks]
        visual = train[0][[train[1][p[0]] for p in picks]]
        logits = probe(visual, [s[0] for s in seqs], [s[1] for s in seqs])
        loss = F.cross_entropy(logits, torch.tensor([y for s in seqs for y in s[2]]))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(probe.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    train_time = time.time() - start
    probe.eval()
    hits = collections.defaultdict(list)
    with torch.no_grad():
        for b in range(0, len(val[1]), 64):
            qs = list(range(b, min(b + 64, len(val[1]))))
            seqs = [sequence([q], val) for q in qs]
            logits = probe(val[0][[val[1][q] for q in qs]], [s[0] for s in seqs],
                           [s[1] for s in seqs])
            for q, guess in zip(qs, logits.argmax(1).tolist()):
                hits[question_kind(val[2][q])].append(classes[guess] == val[3][q])
                hits['all'].append(classes[guess] == val[3][q])
    print(f'{args.steps} steps of {args.batch} samples, {group} question(s) a sample, LLaMA '
          f'{args.layers} x {args.hidden}, lr {args.lr}, seed {args.seed}: {train_time:.0f} s')
    print('| VQA question | n | accuracy |\n|---|---|---|')
    for kind in sorted(hits, key=lambda k: (k == 'all', k)):
        print(f'| {kind} | {len(hits[kind])} | {sum(hits[kind]) / len(hits[kind]):.3f} |')


if __name__ == '__main__':
    main()
