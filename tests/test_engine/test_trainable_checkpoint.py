"""Trainable-only checkpoints (TrainableCheckpointHook) and QLoRA's clear refusal without a GPU."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ullava.models.language import build_llm, build_tokenizer
from ullava.utils import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_checkpoint_holds_only_trainable_parameters_and_reloads(world, tmp_path):
    env = dict(os.environ, ULLAVA_DEMO_DATA=str(world))
    work = tmp_path / 'work'
    config = tmp_path / 'trainable_only.py'
    config.write_text(f"_base_ = ['{ROOT}/configs/demo/ullava_tiny_demo.py']\n"
                      "custom_hooks = [dict(type='TrainableCheckpointHook')]\n"
                      "model = dict(trainable=['^projector', '^box_head'])\n")
    common = ['--cfg-options', 'train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
              'default_hooks.checkpoint.interval=2']
    proc = subprocess.run([sys.executable, 'tools/train.py', str(config),
                           '--work-dir', str(work), *common],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(work / 'iter_2.pth', weights_only=False)
    keys = set(ckpt['state_dict'])
    assert keys and all(k.startswith(('projector.', 'box_head.')) for k in keys)
    assert ckpt['meta']['trainable_only'] and ckpt['meta']['dropped_frozen_keys'] > 0
    # resuming from it works: the frozen part comes from the config, the rest from the file
    proc = subprocess.run([sys.executable, 'tools/train.py', str(config),
                           '--work-dir', str(work), '--resume', str(work / 'iter_2.pth'),
                           *common[:1], 'train_cfg.max_iters=3', *common[2:]],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / 'iter_3.pth').exists() or 'Iter(train) [3/3]' in proc.stdout + proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal on a CPU-only machine')
def test_qlora_without_gpu_is_a_clear_error(tmp_path):
    tok = build_tokenizer(tiny=True)
    with pytest.raises(UserError, match='QLoRA\\) needs a CUDA GPU'):
        build_llm(tok, pretrained=str(tmp_path), load_in_4bit=True)
