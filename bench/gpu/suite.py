"""The GPU suite of issue #15, one process, sections that fail alone (their error is recorded):

1. ``mmcv``: the compiled mmcv ops on CUDA -- nms and roi_align against their CPU kernels, and
   sigmoid_focal_loss (a CUDA-only kernel) against torchvision's.
2. ``latency``: RES single-image latency of u-LLaVA-7B (SAM ViT-H + CLIP ViT-L/14 + LLaMA-7B
   sizes, random weights, bf16): the teacher-forced evaluation forward, and 16 generated tokens.
3. ``step``: the stage-II train step of the same model under DeepSpeed ZeRO-2 bf16, batch 16 x 512
   tokens per GPU, gradient checkpointing on (as the reference trains): samples/s, tokens/s,
   MFU, peak memory.
4. ``tiny``: issue #15's tiny configuration (bench/bench_reference_config.py) on this device.
5. ``packing``: padding-free packing against the padded batch (bench/bench_packing.py, the
   estimated stage-II lengths), LLM tokens/s on this device.

    bench/gpu/run.sh [--dry-run] [--out DIR] [--only mmcv,latency,step,tiny,packing]

Models come from configs/_base_/models/ullava_7b.py with its pretrained folders replaced by
their architectures' sizes (random init, nothing is read or downloaded). ``--dry-run`` runs every
section on the CPU at tiny sizes (tests/test_bench/test_gpu_suite_dry_run.py), so the suite
cannot rot between the rare runs on a GPU. Writes ``summary.json`` and ``summary.md`` to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / 'bench')]

import torch  # noqa: E402

from bench_reference_config import res_batch, timer  # noqa: E402

# Dense bf16 tensor-core peaks (FLOP/s) of the GPUs this suite expects; --peak-tflops otherwise.
PEAK_BF16 = {'H200': 989.4e12, 'H100': 989.4e12, 'A100': 312e12, 'L40S': 362e12}

# (full size, dry-run size) of every part the 7B config loads from a folder.
LLAMA_7B = dict(model_type='llama', hidden_size=4096, intermediate_size=11008,
                num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False)
LLAMA_DRY = dict(LLAMA_7B, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4)
CLIP_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                num_attention_heads=16, image_size=224, patch_size=14)
CLIP_DRY = dict(CLIP_L14, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, image_size=56)
SAM_DRY = dict(encoder=dict(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,),
                            window_size=4),
               image_size=128, patch_size=16, prompt_dim=64,
               decoder=dict(depth=1, mlp_dim=128, num_heads=2))
# batch per GPU: (samples, tokens per sample, answer tokens)
STEP_BATCH = dict(full=(16, 512, 64), dry=(2, 64, 16))


def model_cfg(dry: bool) -> dict:
    """configs/_base_/models/ullava_7b.py, its folders replaced by sizes (tiny for --dry-run)."""
    from mmengine.config import Config

    from ullava.models.tokens import PAD, SPECIAL_TOKENS
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/models/ullava_7b.py')).model.to_dict()
    vocab = 32000 + len(SPECIAL_TOKENS) + len([PAD])  # Vicuna's vocabulary + ullava's tokens
    cfg['tokenizer'] = dict(tiny=True)  # token ids only matter through the vocabulary size
    cfg['llm'] = dict(config=dict(LLAMA_DRY if dry else LLAMA_7B, vocab_size=vocab),
                      torch_dtype='bfloat16', gradient_checkpointing=True)
    cfg['vision_tower'] = dict(cfg['vision_tower'], config=CLIP_DRY if dry else CLIP_L14)
    cfg['vision_tower'].pop('pretrained')
    if dry:
        cfg['mask_head'] = SAM_DRY
        cfg['box_head'] = dict(prompt_dim=SAM_DRY['prompt_dim'])
    else:
        cfg['mask_head'] = {k: v for k, v in cfg['mask_head'].items() if k != 'checkpoint'}
    return cfg


def build_model(dry: bool, device: torch.device):
    """Random-init u-LLaVA-7B (or its dry-run miniature), bf16 weights, SAM attention fused."""
    from ullava.models.heads.sam_attention import use_fused_attention
    from ullava.registry import MODELS
    torch.manual_seed(0)
    with device:  # parameters are created on the GPU: a 7B random init in seconds
        model = MODELS.build(model_cfg(dry))
    model.to(device)  # also tells the data preprocessor its device
    # parameters in bf16, buffers as they are: what DeepSpeed's bf16 mode does (SAM's random
    # positional-encoding matrix must stay fp32: segment-anything multiplies fp32 coordinates)
    for param in model.parameters():
        param.data = param.data.to(torch.bfloat16)
    fused = use_fused_attention(model)
    return model, fused


def median_time(fn, device: torch.device, warmup: int, repeats: int) -> tuple[float, list]:
    timed = timer(device)
    for _ in range(warmup):
        timed(fn)
    runs = [timed(fn) for _ in range(repeats)]
    return statistics.median(runs), runs


# ----------------------------------------------------------------------------- sections
def section_mmcv(device: torch.device) -> dict:
    import mmcv
    from mmcv.ops import get_compiler_version, get_compiling_cuda_version, nms, roi_align
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2000, 2, generator=g) * 500
    boxes = torch.cat([xy, xy + 10 + torch.rand(2000, 2, generator=g) * 50], 1)
    scores = torch.rand(2000, generator=g)
    rois = torch.cat([torch.zeros(64, 1), boxes[:64] / 8], 1)
    feats = torch.randn(1, 16, 80, 80, generator=g)
    keep_cpu = nms(boxes, scores, 0.5)[1]
    roi_cpu = roi_align(feats, rois, (7, 7), 1.0, 2, 'avg', True)
    out = dict(mmcv=mmcv.__version__, compiled_with_cuda=get_compiling_cuda_version(),
               compiler=get_compiler_version(), device=str(device), nms_kept=len(keep_cpu))
    if device.type != 'cuda':
        out['note'] = 'CPU kernels only (no GPU): nms and roi_align ran on the CPU'
        return out
    keep = nms(boxes.to(device), scores.to(device), 0.5)[1].cpu()
    out['nms_cuda_equals_cpu'] = torch.equal(keep, keep_cpu)
    roi = roi_align(feats.to(device), rois.to(device), (7, 7), 1.0, 2, 'avg', True).cpu()
    out['roi_align_max_diff'] = float((roi - roi_cpu).abs().max())
    # sigmoid_focal_loss has no CPU kernel: it runs only if the CUDA ops were compiled
    from mmcv.ops import sigmoid_focal_loss
    from torchvision.ops import sigmoid_focal_loss as tv_focal
    logits = torch.randn(256, 80, generator=g).to(device)
    labels = torch.randint(0, 80, (256,), generator=g).to(device)
    ours = sigmoid_focal_loss(logits, labels, 2.0, 0.25, None, 'none')
    ref = tv_focal(logits, torch.nn.functional.one_hot(labels, 80).float(), 0.25, 2.0, 'none')
    out['sigmoid_focal_loss_max_diff'] = float((ours - ref).abs().max())
    out['nms_2000_boxes_ms'] = 1000 * median_time(
        lambda: nms(boxes.to(device), scores.to(device), 0.5), device, 3, 20)[0]
    out['ok'] = out['nms_cuda_equals_cpu'] and out['roi_align_max_diff'] < 1e-4 \
        and out['sigmoid_focal_loss_max_diff'] < 1e-5
    return out


def section_latency(model, device: torch.device, dry: bool) -> dict:
    """One RES sample (41 text tokens, 480x640 image), the model in bf16."""
    model.eval()
    one = res_batch(model, text_lens=(41,), answer_len=16)
    protocol, generation = model.predict_protocol, dict(model.generation)

    def forward():
        with torch.no_grad():
            model(**model.data_preprocessor(one, False), mode='predict')

    out = {}
    try:
        model.predict_protocol = 'teacher_forced'
        t, _ = median_time(forward, device, 1 if dry else 3, 1 if dry else 10)
        out['teacher_forced_ms'] = 1000 * t
        # with random weights [SEG] is rarely generated: this is CLIP + prompt + 16 decode steps
        model.predict_protocol = 'generate'
        model.generation = dict(max_new_tokens=16, min_new_tokens=16, do_sample=False)
        t, _ = median_time(forward, device, 1 if dry else 2, 1 if dry else 5)
        out['generate_16_tokens_ms'] = 1000 * t
    finally:
        model.predict_protocol, model.generation = protocol, generation
    out['note'] = ('teacher_forced: SAM encoder + CLIP + one LLM forward over prompt and answer + '
                   'mask decoder + postprocess (the reference evaluation protocol)')
    return out


def init_single_process_group(device: torch.device) -> None:
    """DeepSpeed needs a process group; without torchrun, start a one-process one here."""
    import torch.distributed as dist
    if dist.is_initialized():
        return
    if 'RANK' not in os.environ:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                          MASTER_PORT=str(port))
    dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')


def zero2_bytes(trainable: int, frozen: int, world: int) -> int:
    """ZeRO-2 bf16 memory per GPU before activations: bf16 weights (all) and gradients
    (trainable), plus this rank's share of fp32 master weights, fp32 gradients and Adam's two
    moments (4 + 4 + 8 bytes per trainable parameter)."""
    return 2 * (trainable + frozen) + 2 * trainable + 16 * trainable // world


def lm_train_flops(model, lengths: list[int], supervised: int) -> float:
    """Model FLOPs of one train step of the LLM (no recompute counted, as MFU conventionally
    does): 6 x body parameters x tokens, attention 12 x layers x hidden x s^2 per sample, and the
    LM head at the supervised positions only (ullava computes logits there only)."""
    c = model.llm.config
    body = c.num_hidden_layers * (4 * c.hidden_size ** 2 + 3 * c.hidden_size * c.intermediate_size)
    attention = 12 * c.num_hidden_layers * c.hidden_size * sum(s * s for s in lengths)
    return 6 * body * sum(lengths) + attention + 6 * c.hidden_size * c.vocab_size * supervised


def forward_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def section_step(model, device: torch.device, dry: bool, args) -> dict:
    import deepspeed
    init_single_process_group(device)
    world = int(os.environ.get('WORLD_SIZE', 1))
    samples, seq, answer = STEP_BATCH['dry' if dry else 'full']
    text = seq - model.image_tokens - answer
    batch = res_batch(model, text_lens=[text] * samples, answer_len=answer)
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    frozen = sum(p.numel() for p in model.parameters()) - trainable
    estimate = zero2_bytes(trainable, frozen, world)
    offload = args.offload == 'cpu'
    # overlap_comm holds 4.5 buckets more; on one GPU there is no communication to overlap
    zero = dict(stage=2, overlap_comm=world > 1, contiguous_gradients=True,
                reduce_bucket_size=int(5e8), allgather_bucket_size=int(5e8))
    if offload:
        zero['offload_optimizer'] = dict(device='cpu', pin_memory=True)
    ds_config = dict(train_micro_batch_size_per_gpu=samples, gradient_accumulation_steps=1,
                     gradient_clipping=1.0, bf16=dict(enabled=True), zero_optimization=zero,
                     zero_allow_untested_optimizer=True, zero_force_ds_cpu_optimizer=False,
                     steps_per_print=10 ** 9)
    # torch's AdamW (fused on CUDA): DeepSpeed's FusedAdam would JIT-compile first (minutes)
    fused = device.type == 'cuda' and not offload
    optimizer = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.0, fused=fused)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    model.train()

    def step():
        data = model.data_preprocessor(batch, True)
        loss = sum(engine(**data, mode='loss').values())
        engine.backward(loss)
        engine.step()

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    t, runs = median_time(step, device, 1 if dry else 2, 1 if dry else args.steps)
    lengths = [len(x['input_ids']) for x in batch['inputs']]
    supervised = sum(int((x['labels'] != -100).sum()) for x in batch['inputs'])
    lm = lm_train_flops(model, lengths, supervised)
    data = model.data_preprocessor(batch, False)['inputs']
    vision = forward_flops(lambda: model.vision_tower(data['images'][:1])) * samples
    sam_dtype = next(model.mask_head.parameters()).dtype
    vision += forward_flops(
        lambda: model.mask_head.encode_images(data['sam_images'][:1].to(sam_dtype))) * samples
    out = dict(world_size=world, samples=samples, tokens=sum(lengths), step_s=t, runs_s=runs,
               samples_per_s=samples / t, tokens_per_s=sum(lengths) / t,
               trainable_params=trainable, frozen_params=frozen, optimizer_offload=offload,
               zero2_estimate_gib=estimate / 2 ** 30, lm_flops=lm, vision_forward_flops=vision)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else next(
        (v for k, v in PEAK_BF16.items()
         if device.type == 'cuda' and k in torch.cuda.get_device_name(device)), None)
    if peak:
        out['mfu'] = (lm + vision) / t / peak
        out['mfu_llm_only'] = lm / t / peak
        out['peak_flops'] = peak
    if device.type == 'cuda':
        out['peak_memory_gib'] = torch.cuda.max_memory_allocated(device) / 2 ** 30
        out['peak_reserved_gib'] = torch.cuda.max_memory_reserved(device) / 2 ** 30
    else:
        import resource
        out['peak_rss_gib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return out


def section_tiny(device: torch.device, dry: bool) -> dict:
    from bench_reference_config import measure
    if dry:  # the configuration with SAM at 256 px, one repeat: proves the code runs
        return measure(repeats=1, warmup=0, device=str(device), sam_size=256)
    return measure(repeats=10, warmup=2, device=str(device))


def section_packing(device: torch.device, dry: bool) -> dict:
    from bench_packing import estimated_lengths, measure
    size, count = (4, 2) if dry else (16, 8)
    result = measure(estimated_lengths(size * count, seed=0), size, 1 if dry else 5,
                     device=str(device))
    result['attention'] = 'ullava_varlen_sdpa'  # the tiny LLM runs SDPA, not flash-attention
    return result


# ----------------------------------------------------------------------------- summary
def markdown(summary: dict) -> str:
    env = summary['environment']
    lines = [f"# GPU suite ({'dry run, CPU, tiny sizes' if summary['dry_run'] else 'full size'})",
             '', f"{env}", '']
    for name, result in summary['sections'].items():
        lines += [f'## {name} ({result.get("seconds", 0):.0f} s)', '']
        if 'error' in result:
            lines += ['FAILED: ' + result['error'].strip().splitlines()[-1], '']
            continue
        for key, value in result.items():
            if key in ('runs_s', 'seconds') or isinstance(value, (dict, list)):
                continue
            lines.append(f'- {key}: {value:.4g}' if isinstance(value, float)
                         else f'- {key}: {value}')
        if name == 'tiny':
            from bench_reference_config import report
            lines += ['', report(result)]
        lines.append('')
    return '\n'.join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dry-run', action='store_true', help='CPU, tiny sizes')
    parser.add_argument('--out', default='work_dirs/gpu_suite')
    parser.add_argument('--only', default='mmcv,latency,step,tiny,packing')
    parser.add_argument('--steps', type=int, default=5, help='timed train steps')
    parser.add_argument('--offload', choices=('none', 'cpu'), default='none',
                        help='ZeRO-2 optimizer offload to the host (16 bytes of host memory per '
                             'trainable parameter). One GPU holds all fp32 states: about 128 GiB '
                             'at 7B, which fits an H200 (139 GiB), not an 80 GiB card')
    parser.add_argument('--peak-tflops', type=float, help='bf16 peak of this GPU, for MFU')
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        print('no CUDA device: run with --dry-run for the CPU miniature', file=sys.stderr)
        return 2
    rank = int(os.environ.get('RANK', 0))  # several GPUs: torchrun, one process each
    if args.dry_run:
        device = torch.device('cpu')
        torch.set_num_threads(min(2, torch.get_num_threads()))
    else:
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
        torch.cuda.set_device(device)
    import deepspeed
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    env = (f'torch {torch.__version__}, CUDA {torch.version.cuda}, '
           f'deepspeed {deepspeed.__version__}, device {name}')
    wanted = args.only.split(',')
    sections: dict[str, dict] = {}
    model = None

    def run(name, fn):
        start = time.perf_counter()
        try:
            sections[name] = fn()
        except Exception:  # noqa: BLE001 -- one failing section must not hide the others
            sections[name] = dict(error=traceback.format_exc())
            print(f'[suite] {name} FAILED\n{sections[name]["error"]}', file=sys.stderr)
        sections[name]['seconds'] = time.perf_counter() - start
        print(f'[suite] {name} done in {sections[name]["seconds"]:.1f} s', flush=True)

    if 'mmcv' in wanted:
        run('mmcv', lambda: section_mmcv(device))
    if 'latency' in wanted or 'step' in wanted:
        start = time.perf_counter()
        model, fused = build_model(args.dry_run, device)
        print(f'[suite] model built in {time.perf_counter() - start:.1f} s '
              f'({fused} SAM attention layers fused)', flush=True)
    if 'latency' in wanted:
        run('latency', lambda: section_latency(model, device, args.dry_run))
    if 'step' in wanted:
        run('step', lambda: section_step(model, device, args.dry_run, args))
    model = None
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    if 'tiny' in wanted:
        run('tiny', lambda: section_tiny(device, args.dry_run))
    if 'packing' in wanted:
        run('packing', lambda: section_packing(device, args.dry_run))
    summary = dict(dry_run=args.dry_run, environment=env, sections=sections)
    if rank:
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'summary.json').write_text(json.dumps(summary, indent=1))
    (out / 'summary.md').write_text(markdown(summary))
    print(markdown(summary))
    return 1 if any('error' in s for s in sections.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
