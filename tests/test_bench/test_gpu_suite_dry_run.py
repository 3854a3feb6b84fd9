"""bench/gpu/run.sh --dry-run: every section of the GPU suite runs on the CPU at tiny sizes and
writes its summary, so the suite keeps working between the rare runs on a GPU."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_suite_dry_run(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='2')
    env.pop('OUT', None)
    proc = subprocess.run(['bash', 'bench/gpu/run.sh', '--dry-run', '--out', str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['dry_run'] is True
    sections = summary['sections']
    assert sorted(sections) == ['latency', 'mmcv', 'packing', 'step', 'tiny']
    assert not [name for name, s in sections.items() if 'error' in s]
    assert sections['mmcv']['nms_kept'] > 0
    assert sections['latency']['teacher_forced_ms'] > 0
    assert sections['latency']['generate_16_tokens_ms'] > 0
    step = sections['step']
    assert step['samples'] == 2 and step['tokens'] == 2 * 64  # the dry-run batch, 2 x 64 tokens
    assert step['samples_per_s'] > 0 and step['lm_flops'] > 0 and step['vision_forward_flops'] > 0
    assert step['trainable_params'] > 0 and step['frozen_params'] > 0
    tiny = sections['tiny']
    assert set(tiny['ratios']) == {'train_step: sam / fused', 'train_step: sam / cached',
                                   'eval_forward: sam / fused', 'eval_forward: sam / cached',
                                   'sam_encoder: sam / fused'}
    assert tiny['tokens_per_sample'] == [41 + 256 + 16, 37 + 256 + 16]
    packing = sections['packing']
    assert packing['max_state_diff'] < 1e-4 and packing['packed_tokens_per_s'] > 0
    assert 0 < packing['padding_fraction'] < 1
    text = (tmp_path / 'summary.md').read_text()
    assert '## step' in text and 'sam_encoder: sam / fused' in text


def test_full_size_model_is_u_llava_7b():
    """The suite's full-size model, built on the meta device (no memory): the paper's parts."""
    import torch
    sys.path[:0] = [str(ROOT / 'bench'), str(ROOT / 'bench/gpu')]
    import suite

    from ullava.registry import MODELS
    with torch.device('meta'):
        model = MODELS.build(suite.model_cfg(dry=False))

    def count(module):
        return sum(p.numel() for p in module.parameters())
    assert count(model.llm) == 6_738_505_728          # LLaMA-7B with 32,000 + 11 added tokens
    assert count(model.vision_tower) == 303_179_776   # CLIP ViT-L/14 vision tower
    assert count(model.mask_head.image_encoder) == 637_026_048  # SAM ViT-H
    assert model.image_tokens == 256 and model.mask_head.image_size == 1024
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = count(model) - trainable
    # one H200 (139 GiB) holds ZeRO-2's unsharded states for the 6.8 B trainable parameters
    assert 120 < suite.zero2_bytes(trainable, frozen, world=1) / 2 ** 30 < 135
