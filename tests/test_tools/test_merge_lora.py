"""tools/merge_lora.py: the adapter merged into the LLM, a plain checkpoint, same predictions."""
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file
from test_tools.test_export import (assert_same_predictions, build_tiny, predictions,
                                    write_training_checkpoint)

from ullava.engine.launch import load_config

ROOT = Path(__file__).resolve().parents[2]


def run_tool(*args, timeout=600):
    return subprocess.run([sys.executable, 'tools/merge_lora.py', *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_merge_lora_cli_writes_a_plain_checkpoint_with_equal_predictions(tmp_path):
    from ullava.models.hub import build_from_checkpoint
    cfg, model = build_tiny(lora=True)  # LoRA B perturbed: the merge changes the weights
    expected = predictions(model)
    base_v = model.state_dict()[
        'llm.base_model.model.model.layers.1.self_attn.v_proj.base_layer.weight']
    ckpt, config = write_training_checkpoint(model, cfg, tmp_path / 'work')
    out = tmp_path / 'merged' / 'model.safetensors'

    proc = run_tool(config, ckpt, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    merged_cfg_file = out.with_suffix('.py')
    assert merged_cfg_file.is_file()
    merged_cfg = load_config(merged_cfg_file)
    assert 'lora' not in merged_cfg.model

    weights = load_file(str(out))
    assert not any('lora' in k or 'base_model' in k for k in weights)
    assert (weights['llm.model.layers.1.self_attn.v_proj.weight'] - base_v).abs().max() > 1e-4

    merged = build_from_checkpoint(merged_cfg.model, out)  # strict: every key, right shapes
    assert_same_predictions(expected, predictions(merged), atol=1e-6)


def test_merging_a_config_without_lora_is_a_clear_error(tmp_path):
    cfg, model = build_tiny()
    ckpt, config = write_training_checkpoint(model, cfg, tmp_path / 'work')
    proc = run_tool(config, ckpt, tmp_path / 'out.safetensors')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert 'no model.lora' in proc.stderr.strip().splitlines()[-1]
