"""Padding-free packing against the padded batch: LLM tokens per second, forward + backward.

    python bench/bench_packing.py [--batch-size 16] [--batches 8] [--repeats 5] [--threads 2]
    python bench/bench_packing.py --config configs/demo/ullava_demo.py   # a config's real lengths

Sample lengths (text + image / video tokens, the LLM's input) come from one of:

- ``--config CFG``: the config's training mixture itself, each drawn sample run through its
  pipeline (``len(input_ids)``): the measured lengths, for any config whose data is on disk;
- by default, :data:`STAGE2_ESTIMATE`, an estimate of the stage-II mixture's lengths
  (``configs/_base_/datasets/ullava_stage2_mixture.py``: 256 image tokens, conv_sep2, 512 tokens
  at most) for a machine without its data. Its sample counts are approximate public train-split
  sizes and its text lengths are ranges, not measurements: with the data, use ``--config``.

The model is the LLM of issue #15's tiny configuration (LLaMA hidden 256, 2 layers, 4 heads, MLP
688), random weights, fp32; one step = the body's forward on a batch's embeddings + backward of
a loss on its states. ``padded``: the [B, max_len] batch with its attention mask, as the
reference runs it; ``packed``: ``ullava/models/packing.py`` (one row of the real tokens, each
sample attending within itself). The two alternate within the run; their states are checked
equal first. Tokens/s counts real tokens only, the same number for both.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

IMAGE_TOKENS = 256
MAX_LENGTH = 512
# (dataset, approximate train samples, text tokens low..high incl. conv_sep2's ~40-token system
# text). Referring / semantic / part samples hold 1-3 question-answer turns of ~30 tokens
# (the digest: up to 3 sentences or classes a sample); salient adds a one-sentence reason;
# LLaVA-Instruct is multi-turn conversation, the long tail, cut at MAX_LENGTH.
STAGE2_ESTIMATE = [
    ('llava_instruct_150k', 157_712, (80, 700)),
    ('refcoco', 42_404, (70, 135)),
    ('refcoco+', 42_278, (70, 135)),
    ('refcocog', 42_226, (80, 160)),
    ('refclef', 58_838, (70, 135)),
    ('ade20k', 20_210, (70, 135)),
    ('cocostuff', 118_287, (70, 135)),
    ('pascal_part', 4_366, (70, 135)),
    ('paco_lvis', 45_790, (70, 135)),
    ('msra10k', 10_000, (90, 140)),
    ('msra_b', 2_500, (90, 140)),
]


def estimated_lengths(count: int, seed: int) -> list[int]:
    """``count`` lengths drawn from :data:`STAGE2_ESTIMATE` in proportion to its sizes."""
    rng = np.random.default_rng(seed)
    sizes = np.array([n for _, n, _ in STAGE2_ESTIMATE], dtype=float)
    picks = rng.choice(len(STAGE2_ESTIMATE), size=count, p=sizes / sizes.sum())
    out = []
    for k in picks:
        low, high = STAGE2_ESTIMATE[k][2]
        out.append(min(MAX_LENGTH, IMAGE_TOKENS + int(rng.integers(low, high + 1))))
    return out


def config_lengths(config: str, count: int, seed: int) -> list[int]:
    """``count`` samples of the config's training dataset, through its pipeline."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from ullava.registry import DATASETS
    init_default_scope('ullava')
    cfg = Config.fromfile(config)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    rng = np.random.default_rng(seed)
    return [len(dataset[int(i)]['inputs']['input_ids'])
            for i in rng.integers(0, len(dataset), size=count)]


def tiny_llm():
    from transformers import LlamaConfig, LlamaModel
    torch.manual_seed(0)
    return LlamaModel(LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=4, vocab_size=32011,
                                  max_position_embeddings=2048))


def batches(lengths: list[int], batch_size: int, dim: int, seed: int, device='cpu'):
    g = torch.Generator().manual_seed(seed)
    for start in range(0, len(lengths) - batch_size + 1, batch_size):
        lens = torch.tensor(lengths[start:start + batch_size])
        mask = torch.arange(int(lens.max()))[None] < lens[:, None]
        embeds = torch.randn(len(lens), int(lens.max()), dim, generator=g)
        yield embeds.to(device), mask.to(device)


def measure(lengths: list[int], batch_size: int, repeats: int, device: str = 'cpu') -> dict:
    """Median seconds of a pass over the batches, padded and packed, alternated."""
    from ullava.models.packing import enable_packing, packed_forward
    llm = tiny_llm().to(device)
    enable_packing(llm)  # its unpacked calls are transformers' SDPA, as the padded model's
    work = list(batches(lengths, batch_size, llm.config.hidden_size, seed=1, device=device))

    def padded(embeds, mask):
        return llm(inputs_embeds=embeds, attention_mask=mask).last_hidden_state

    def packed(embeds, mask):
        return packed_forward(llm, embeds, mask)

    worst = 0.0
    for embeds, mask in work:  # the same states first
        with torch.no_grad():
            a, b = padded(embeds, mask), packed(embeds, mask)
        worst = max(worst, float((a[mask] - b[mask]).abs().max()))

    def step(fn) -> float:
        sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else (lambda: None)
        sync()
        start = time.perf_counter()
        for embeds, mask in work:
            x = embeds.detach().requires_grad_(True)  # a fresh leaf: no grad kept across steps
            (fn(x, mask)[mask].square().mean()).backward()
            llm.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - start

    times = dict(padded=[], packed=[])
    step(padded), step(packed)  # warm-up
    for _ in range(repeats):
        for name, fn in (('padded', padded), ('packed', packed)):
            times[name].append(step(fn))
    real = sum(int(m.sum()) for _, m in work)
    slots = sum(m.numel() for _, m in work)
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(batches=len(work), batch_size=batch_size, real_tokens=real, padded_slots=slots,
                padding_fraction=1 - real / slots, max_state_diff=worst,
                padded_s=med['padded'], packed_s=med['packed'],
                padded_tokens_per_s=real / med['padded'], packed_tokens_per_s=real / med['packed'],
                speedup=med['padded'] / med['packed'])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', help='draw lengths from this config\'s training mixture')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--batches', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the figures here')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    count = args.batch_size * args.batches
    lengths = config_lengths(args.config, count, args.seed) if args.config \
        else estimated_lengths(count, args.seed)
    result = measure(lengths, args.batch_size, args.repeats)
    result.update(source=args.config or 'STAGE2_ESTIMATE', threads=args.threads,
                  torch=torch.__version__, length_min=min(lengths), length_max=max(lengths),
                  length_mean=float(np.mean(lengths)))
    print(f"`python bench/bench_packing.py{' --config ' + args.config if args.config else ''} "
          f"--batch-size {args.batch_size} --batches {args.batches} --repeats {args.repeats} "
          f"--threads {args.threads}` (torch {torch.__version__})\n")
    print('| lengths from | batches x size | lengths min / mean / max | padding | padded tokens/s '
          '| packed tokens/s | packed / padded | max state diff |')
    print('|---|---|---|---|---|---|---|---|')
    print(f"| {result['source']} | {result['batches']} x {args.batch_size} | {min(lengths)} / "
          f"{result['length_mean']:.0f} / {max(lengths)} | {result['padding_fraction']:.0%} | "
          f"{result['padded_tokens_per_s']:,.0f} | {result['packed_tokens_per_s']:,.0f} | "
          f"{result['speedup']:.2f}x | {result['max_state_diff']:.1e} |")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
