"""tools/convert_ullava_ckpt.py: released u-LLaVA key names -> ullava's, with a clear report."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TINY_CFG = 'configs/_base_/models/ullava_tiny.py'
UNMAPPABLE = 'llm.future_adapter.weight'
IGNORABLE = 'llm.model.layers.0.self_attn.rotary_emb.inv_freq'

# The released layout, written out independently of the converter: ullava prefix -> released.
RELEASED = [
    ('vision_tower.clip.vision_model.', 'llm.vision_encoder.vision_model.'),  # transformers < 5
    ('vision_tower.clip.', 'llm.vision_encoder.vision_model.'),
    ('projector.', 'llm.vision_projector.'),
    ('llm.model.', 'llm.model.'),
    ('llm.lm_head.', 'llm.lm_head.'),
    ('mask_head.seg_projector.', 'seg_projector.'),
    ('mask_head.image_encoder.', 'visual_model.image_encoder.'),
    ('mask_head.prompt_encoder.', 'visual_model.prompt_encoder.'),
    ('mask_head.mask_decoder.', 'visual_model.mask_decoder.'),
    ('box_head.det_projector.', 'det_projector.'),
    ('box_head.det_decoder.', 'det_decoder.'),
]


def released_name(key: str) -> str:
    for ours, theirs in RELEASED:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    raise AssertionError(f'no released name for {key}')


def run_tool(*args, timeout=600):
    return subprocess.run([sys.executable, 'tools/convert_ullava_ckpt.py', *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def tiny():
    """The tiny model's config, state dict (seeded) and a released-layout copy of new values."""
    from mmengine.config import Config

    from ullava.registry import MODELS
    cfg = Config.fromfile(str(ROOT / TINY_CFG))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    g = torch.Generator().manual_seed(1)
    released = {released_name(k): torch.randn(v.shape, generator=g).to(v.dtype)
                for k, v in model.state_dict().items()}
    # the names of the brief, so the mapping cannot drift with the inverse above
    for name in ('llm.vision_encoder.vision_model.encoder.layers.0.self_attn.q_proj.weight',
                 'llm.vision_encoder.vision_model.embeddings.patch_embedding.weight',
                 'llm.vision_projector.0.weight', 'llm.vision_projector.2.bias',
                 'llm.model.embed_tokens.weight', 'llm.model.layers.1.mlp.gate_proj.weight',
                 'llm.model.norm.weight', 'llm.lm_head.weight', 'seg_projector.2.weight',
                 'det_projector.0.weight', 'det_projector.2.bias', 'det_decoder.4.weight',
                 'visual_model.image_encoder.blocks.0.attn.rel_pos_h',
                 'visual_model.prompt_encoder.no_mask_embed.weight',
                 'visual_model.mask_decoder.iou_token.weight'):
        assert name in released, name
    return cfg, model, released


def with_extras(released: dict) -> dict:
    return {**released, UNMAPPABLE: torch.zeros(3), IGNORABLE: torch.zeros(16)}


def assert_loads_into(model, dst: Path, released: dict) -> None:
    """The converted file loads strictly into the model and holds the released tensors."""
    from safetensors.torch import load_file
    state = load_file(str(dst))
    model.load_state_dict(state, strict=True)
    own = model.state_dict()
    for key, value in own.items():
        assert torch.equal(value, released[released_name(key)]), key


def test_mapping_of_single_keys():
    from ullava.models.convert import map_key
    assert map_key('llm.vision_encoder.vision_model.post_layernorm.bias') in (
        'vision_tower.clip.post_layernorm.bias',
        'vision_tower.clip.vision_model.post_layernorm.bias')
    assert map_key('llm.vision_projector.weight') == 'projector.weight'  # linear projector
    assert map_key('text_hidden_fcs.0.weight') == 'mask_head.seg_projector.0.weight'  # public code
    assert map_key('visual_model.mask_decoder.mask_tokens.weight') == \
        'mask_head.mask_decoder.mask_tokens.weight'
    assert map_key('det_decoder.4.bias') == 'box_head.det_decoder.4.bias'
    assert map_key(UNMAPPABLE) is None


def test_convert_function_reports_and_round_trips(tiny, tmp_path):
    from safetensors.torch import save_file

    from ullava.models.convert import ConversionError, convert_checkpoint
    cfg, model, released = tiny
    src = tmp_path / 'released.safetensors'
    save_file(with_extras(released), str(src))
    dst = tmp_path / 'ullava.safetensors'

    with pytest.raises(ConversionError, match=f'1 unmapped key.*{UNMAPPABLE}') as err:
        convert_checkpoint(src, dst, cfg.model.to_dict())
    assert not dst.exists()  # nothing half-written
    assert err.value.report.unmapped == [UNMAPPABLE]

    report = convert_checkpoint(src, dst, cfg.model.to_dict(), allow_partial=True)
    assert report.unmapped == [UNMAPPABLE] and report.ignored == [IGNORABLE]
    assert not (report.missing or report.unexpected or report.shape_mismatch)
    assert len(report.converted) == len(released)
    text = report.format()
    assert 'UNMAPPED (no rule; not written) (1)' in text and UNMAPPABLE in text
    assert 'NOT numerically equivalent' in text and "box_source='mask'" in text
    assert_loads_into(model, dst, released)


def test_convert_reads_a_sharded_hf_folder(tiny, tmp_path):
    from safetensors.torch import save_file

    from ullava.models.convert import convert_checkpoint
    cfg, model, released = tiny
    folder = tmp_path / 'ullava-7b'
    folder.mkdir()
    keys = sorted(released)
    weight_map = {}
    for i, part in enumerate((keys[::2], keys[1::2])):
        name = f'model-0000{i + 1}-of-00002.safetensors'
        save_file({k: released[k] for k in part}, str(folder / name))
        weight_map.update({k: name for k in part})
    (folder / 'model.safetensors.index.json').write_text(json.dumps({'weight_map': weight_map}))
    dst = tmp_path / 'out.safetensors'
    report = convert_checkpoint(folder, dst, cfg.model.to_dict())
    assert report.ok
    assert_loads_into(model, dst, released)


def test_cli_converts_a_bin_and_reports_the_unmapped_key(tiny, tmp_path):
    cfg, model, released = tiny
    src = tmp_path / 'pytorch_model.bin'
    torch.save(with_extras(released), src)  # a plain dict of tensors: loads with weights_only
    dst = tmp_path / 'converted.safetensors'

    proc = run_tool(src, dst, '--config', TINY_CFG)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and '1 unmapped key(s)' in last and UNMAPPABLE in last
    assert '--allow-partial' in last and not dst.exists()

    proc = run_tool(src, dst, '--config', TINY_CFG, '--allow-partial')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'UNMAPPED (no rule; not written) (1):' in proc.stdout and UNMAPPABLE in proc.stdout
    assert 'ignored (recomputed by the model) (1):' in proc.stdout
    assert 'every model key present with the right shape' in proc.stdout
    assert 'NOT numerically equivalent' in proc.stdout
    assert_loads_into(model, dst, released)


def test_shape_mismatch_is_a_clear_error(tiny, tmp_path):
    from safetensors.torch import save_file

    from ullava.models.convert import ConversionError, convert_checkpoint
    cfg, _, released = tiny
    bad = dict(released)
    bad['llm.model.norm.weight'] = torch.zeros(64)  # the model's is (128,)
    src = tmp_path / 'bad.safetensors'
    save_file(bad, str(src))
    dst = tmp_path / 'out.safetensors'
    with pytest.raises(ConversionError) as err:
        convert_checkpoint(src, dst, cfg.model.to_dict())
    assert err.value.report.shape_mismatch == [
        'llm.model.norm.weight: checkpoint (64,) vs model (128,)']

    proc = run_tool(src, dst, '--config', TINY_CFG)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert 'SHAPE MISMATCH (1):' in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and '1 shape mismatch(s)' in last
    assert 'llm.model.norm.weight: checkpoint (64,) vs model (128,)' in last
    assert not dst.exists()


def test_checking_a_config_with_pretrained_folders_reads_no_weights(tiny, tmp_path):
    """As the 7B config: LLM / CLIP from local folders, SAM from a .pth -- only configs are read."""
    from ullava.models.convert import reference_shapes
    cfg, model, _ = tiny
    model.llm.save_pretrained(str(tmp_path / 'llm'))
    model.tokenizer.save_pretrained(str(tmp_path / 'llm'))
    model.vision_tower.clip.save_pretrained(str(tmp_path / 'clip'))
    for weights in [*tmp_path.glob('*/*.safetensors')]:
        weights.unlink()  # a weight file read would now fail
    model_cfg = cfg.model.to_dict()
    model_cfg['tokenizer'] = dict(path=str(tmp_path / 'llm'))
    model_cfg['llm'] = dict(pretrained=str(tmp_path / 'llm'))
    model_cfg['vision_tower'] = dict(pretrained=str(tmp_path / 'clip'), select_layer=-2,
                                     num_frames=4)
    model_cfg['mask_head']['checkpoint'] = str(tmp_path / 'no_such_sam.pth')
    model_cfg['lora'] = dict(r=4, target_modules=['q_proj'])  # released weights are merged
    shapes = reference_shapes(model_cfg)
    assert shapes == {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_missing_source_is_one_error_line(tmp_path):
    proc = run_tool(tmp_path / 'nope.bin', tmp_path / 'out.safetensors')
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith('error: checkpoint not found')
