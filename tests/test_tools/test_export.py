"""tools/export_hf.py and ullava.models.hub: export a checkpoint, load it back (with ullava and
with transformers' Auto classes), same predictions."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ullava.registry import MODELS
from ullava.utils import UserError, mark_work_dir

from test_models.batch import mixed_batch  # tests/ is on sys.path (rootdir-relative import)

ROOT = Path(__file__).resolve().parents[2]
TINY_CFG = ROOT / 'configs/_base_/models/ullava_tiny.py'
LORA = dict(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'], lora_dropout=0.0)


def run_tool(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def tiny_config(lora: bool = False):
    from mmengine.config import Config
    cfg = Config.fromfile(str(TINY_CFG))
    if lora:
        cfg.model.lora = copy.deepcopy(LORA)
    return cfg


def build_tiny(lora: bool = False, seed: int = 0):
    """The tiny model (seeded); with ``lora``, its zero-initialised LoRA B weights perturbed."""
    cfg = tiny_config(lora)
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    if lora:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if 'lora_B' in name:
                    param.copy_(torch.randn(param.shape, generator=g) * 0.05)
    return cfg, model.eval()


def write_training_checkpoint(model, cfg, folder: Path) -> tuple[Path, Path]:
    """An MMEngine-style checkpoint in a marked work dir, and the config file beside it."""
    mark_work_dir(folder)
    ckpt = folder / 'iter_1.pth'
    torch.save({'meta': {'iter': 1}, 'state_dict': model.state_dict()}, ckpt)
    config = folder / 'config.py'
    cfg.dump(str(config))
    return ckpt, config


def predictions(model):
    """Teacher-forced predictions of the shared mixed batch."""
    model.eval()
    model.predict_protocol = 'teacher_forced'
    with torch.no_grad():
        return model(**model.data_preprocessor(mixed_batch(model), False), mode='predict')


def assert_same_predictions(a, b, atol: float = 0.0) -> None:
    """Same texts; mask probabilities and boxes (as fractions of the image's longest side)
    equal, or within ``atol``."""
    for x, y in zip(a, b, strict=True):
        assert x.pred_text == y.pred_text
        side = max(x.metainfo['ori_shape'])
        if atol == 0:
            assert torch.equal(x.pred_mask_scores, y.pred_mask_scores)
            assert torch.equal(x.pred_boxes, y.pred_boxes)
        else:
            torch.testing.assert_close(x.pred_mask_scores, y.pred_mask_scores, atol=atol, rtol=0)
            torch.testing.assert_close(x.pred_boxes / side, y.pred_boxes / side, atol=atol,
                                       rtol=0)


def test_export_cli_then_from_pretrained_gives_identical_predictions(tmp_path):
    from ullava.models.hub import from_pretrained
    cfg, model = build_tiny()
    expected = predictions(model)
    ckpt, config = write_training_checkpoint(model, cfg, tmp_path / 'work')
    out = tmp_path / 'export'
    proc = run_tool('tools/export_hf.py', str(config), str(ckpt), str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in out.iterdir()} >= {'model.safetensors', 'config.json', 'tokenizer',
                                               'README.md', 'configuration_ullava.py',
                                               'modeling_ullava.py'}
    saved = json.loads((out / 'config.json').read_text())
    assert saved['model_type'] == 'ullava' and saved['architectures'] == ['ULLaVAForCausalLM']
    assert saved['auto_map'] == {'AutoConfig': 'configuration_ullava.ULLaVAConfig',
                                 'AutoModel': 'modeling_ullava.ULLaVAForCausalLM',
                                 'AutoModelForCausalLM': 'modeling_ullava.ULLaVAForCausalLM'}
    model_cfg = saved['ullava_model']
    assert model_cfg['type'] == 'ULLaVA' and model_cfg['tokenizer'] == {'path': 'tokenizer'}
    assert 'lora' not in model_cfg
    card = (out / 'README.md').read_text()
    total = sum(p.numel() for p in model.parameters())
    assert f'| total | {total:,} |' in card and 'from_pretrained' in card
    assert 'AutoModelForCausalLM.from_pretrained("PATH/TO/THIS/FOLDER", trust_remote_code=True)' \
        in card

    loaded = from_pretrained(out)
    assert loaded.token_ids == model.token_ids and len(loaded.tokenizer) == len(model.tokenizer)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert_same_predictions(expected, predictions(loaded))


def test_export_merges_lora_and_keeps_predictions(tmp_path):
    from safetensors.torch import load_file

    from ullava.models.hub import from_pretrained
    cfg, model = build_tiny(lora=True)
    expected = predictions(model)
    state = model.state_dict()
    base_q = state['llm.base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight']
    ckpt, config = write_training_checkpoint(model, cfg, tmp_path / 'work')
    out = tmp_path / 'export'
    proc = run_tool('tools/export_hf.py', str(config), str(ckpt), str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]

    weights = load_file(str(out / 'model.safetensors'))
    assert not any('lora' in k or 'base_model' in k for k in weights)
    merged_q = weights['llm.model.layers.0.self_attn.q_proj.weight']
    assert not torch.allclose(merged_q, base_q, atol=1e-4)  # the adapter really changed it
    assert 'lora' not in json.loads((out / 'config.json').read_text())['ullava_model']

    loaded = from_pretrained(out)
    assert not hasattr(loaded.llm, 'peft_config')
    # merged weights round differently from base + adapter (measured: 6e-8 on mask
    # probabilities, 4e-8 of the image side on boxes)
    assert_same_predictions(expected, predictions(loaded), atol=1e-6)
    # transformers' Auto class gives the very same model as ullava's loader
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(str(out), trust_remote_code=True)
    assert_same_predictions(predictions(loaded), predictions(hf.model))


def test_exported_folder_does_not_need_the_pretrained_folders(tmp_path):
    """A model built from local HF folders (as the 7B config) exports self-contained."""
    import shutil

    from ullava.models.hub import from_pretrained, save_pretrained
    cfg, tiny = build_tiny()
    tiny.llm.save_pretrained(str(tmp_path / 'llm'))
    tiny.tokenizer.save_pretrained(str(tmp_path / 'llm'))
    tiny.vision_tower.clip.save_pretrained(str(tmp_path / 'clip'))
    cfg.model.tokenizer = dict(path=str(tmp_path / 'llm'))
    cfg.model.llm = dict(pretrained=str(tmp_path / 'llm'))
    cfg.model.vision_tower = dict(pretrained=str(tmp_path / 'clip'), select_layer=-2,
                                  num_frames=4)
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    expected = predictions(model)
    save_pretrained(model, cfg, tmp_path / 'export')
    shutil.rmtree(tmp_path / 'llm')
    shutil.rmtree(tmp_path / 'clip')
    saved = json.loads((tmp_path / 'export' / 'config.json').read_text())['ullava_model']
    assert 'pretrained' not in saved['llm'] and saved['llm']['config']['hidden_size'] == 128
    assert 'pretrained' not in saved['vision_tower']
    assert_same_predictions(expected, predictions(from_pretrained(tmp_path / 'export')))


def test_from_pretrained_names_the_file_and_the_bad_keys(tmp_path):
    from safetensors.torch import load_file, save_file

    from ullava.models.hub import from_pretrained, save_pretrained
    cfg, model = build_tiny()
    save_pretrained(model, cfg, tmp_path)
    weights = load_file(str(tmp_path / 'model.safetensors'))
    weights['llm.model.extra.weight'] = weights.pop('llm.model.norm.weight')
    save_file(weights, str(tmp_path / 'model.safetensors'))
    with pytest.raises(UserError) as err:
        from_pretrained(tmp_path)
    message = str(err.value)
    assert 'model.safetensors' in message
    assert 'missing keys 1' in message and 'llm.model.norm.weight' in message
    assert 'unexpected keys 1' in message and 'llm.model.extra.weight' in message
    with pytest.raises(UserError, match='config.json not found'):
        from_pretrained(tmp_path / 'nowhere')


def test_export_of_a_missing_checkpoint_is_one_error_line(tmp_path):
    proc = run_tool('tools/export_hf.py', str(TINY_CFG), str(tmp_path / 'missing.pth'),
                    str(tmp_path / 'out'))
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('error: checkpoint not found')


# A fresh interpreter that knows nothing of ullava: only transformers, the folder and its
# trust_remote_code files (which import ullava, found through PYTHONPATH as an installed package).
HF_LOAD = """
import sys, torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
assert 'ullava' not in sys.modules
folder, out = sys.argv[1], sys.argv[2]
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
again = AutoModel.from_pretrained(folder, trust_remote_code=True)
sys.path.insert(0, 'tests')
from test_tools.test_export import predictions
torch.save(dict(config=type(config).__name__, model=type(model).__name__,
                training=model.training, state=model.model.state_dict(),
                again=type(again).__name__, preds=predictions(model.model)), out)
"""


def test_auto_classes_load_the_export_in_a_fresh_interpreter(tmp_path):
    cfg, model = build_tiny()
    expected = predictions(model)
    ckpt, config = write_training_checkpoint(model, cfg, tmp_path / 'work')
    out = tmp_path / 'hf_export'
    assert run_tool('tools/export_hf.py', str(config), str(ckpt), str(out)).returncode == 0
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_MODULES_CACHE=str(tmp_path / 'modules'),
               HF_HUB_OFFLINE='1')
    proc = run_tool('-c', HF_LOAD, str(out), str(tmp_path / 'result.pt'), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = torch.load(tmp_path / 'result.pt', weights_only=False)
    assert result['config'] == 'ULLaVAConfig' and result['model'] == 'ULLaVAForCausalLM'
    assert result['again'] == 'ULLaVAForCausalLM' and result['training'] is False
    for key, value in model.state_dict().items():
        assert torch.equal(value, result['state'][key]), key
    assert_same_predictions(expected, result['preds'])  # bitwise


def test_hf_model_saves_and_loads_as_an_export(tmp_path):
    from transformers import AutoConfig, AutoModel

    from ullava.models.hub import ULLaVAConfig, ULLaVAForCausalLM, save_pretrained
    cfg, model = build_tiny()
    expected = predictions(model)
    save_pretrained(model, cfg, tmp_path / 'first')
    config = AutoConfig.from_pretrained(str(tmp_path / 'first'))  # registered: no remote code
    assert isinstance(config, ULLaVAConfig) and config.ullava_model['type'] == 'ULLaVA'
    hf = AutoModel.from_pretrained(str(tmp_path / 'first'))
    assert isinstance(hf, ULLaVAForCausalLM)
    hf.save_pretrained(tmp_path / 'second')
    first, second = (json.loads((tmp_path / d / 'config.json').read_text())
                     for d in ('first', 'second'))
    assert first == second
    again = AutoModel.from_pretrained(str(tmp_path / 'second'), dtype='float32',
                                      device_map='cpu')
    assert_same_predictions(expected, predictions(again.model))
    with pytest.raises(UserError, match='not a ullava model folder: config.json not found'):
        ULLaVAForCausalLM.from_pretrained(tmp_path / 'second' / 'tokenizer')
