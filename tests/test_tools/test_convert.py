"""tools/convert_ullava_ckpt.py: released u-LLaVA key names -> ullava's, with a clear report."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

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
    assert 'token rows (mapped by token string) (2)' in text and 'none moved' in text
    assert 'NOTE' not in text  # the tiny config uses the reference's conventions
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


# ---------------------------------------------------------------------------- the reference
# A tiny model in the reference's exact state-dict layout and token order, built here from the
# digest's names with transformers' and segment-anything's own classes (not from ullava's model),
# and the reference's computations of hidden states, logits, masks and boxes on it.
REFERENCE_ORDER = ['[PAD]', '<image_patch>', '<video_patch>', '<img_beg>', '</img_end>',
                   '<vid_beg>', '</vid_end>', '[SEG]', '[LOC]', '[tag]', '[/tag]']


def relu_mlp(*dims):
    """The reference's Linear-ReLU-Linear(-ReLU-Linear) with a trailing Dropout(0) (no params)."""
    from torch import nn
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1], nn.Dropout(0.0))


class ReferenceModel:
    """The reference's modules at the tiny config's sizes, seeded, and its forward pieces."""

    def __init__(self, cfg, base_vocab: int, clip_infix: bool) -> None:
        from functools import partial

        from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder,
                                               TwoWayTransformer)
        from torch import nn
        from transformers import (CLIPVisionConfig, CLIPVisionModel, LlamaConfig,
                                  LlamaForCausalLM)
        torch.manual_seed(7)
        m = cfg.model
        llm_cfg = {k: v for k, v in m.llm.config.items() if k != 'model_type'}
        self.llm = LlamaForCausalLM(LlamaConfig(vocab_size=base_vocab + 11, **llm_cfg)).eval()
        self.clip = CLIPVisionModel(CLIPVisionConfig(**m.vision_tower.config)).eval()
        hidden, clip_hidden = llm_cfg['hidden_size'], m.vision_tower.config.hidden_size
        head = m.mask_head
        dim, size = head.prompt_dim, head.image_size
        grid = size // head.patch_size
        self.projector = nn.Linear(clip_hidden, hidden)  # the reference's 'mlp'
        self.seg_projector = relu_mlp(hidden, hidden, dim)
        self.det_projector = relu_mlp(hidden, hidden, dim)
        self.det_decoder = relu_mlp(dim, dim, dim // 2, 4)
        self.sam = nn.ModuleDict(dict(
            image_encoder=ImageEncoderViT(
                img_size=size, patch_size=head.patch_size, out_chans=dim, mlp_ratio=4,
                norm_layer=partial(nn.LayerNorm, eps=1e-6), qkv_bias=True, use_rel_pos=True,
                **head.encoder),
            prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                                         input_image_size=(size, size), mask_in_chans=16),
            mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=dim,
                                     iou_head_depth=3, iou_head_hidden_dim=256,
                                     transformer=TwoWayTransformer(embedding_dim=dim,
                                                                   **head.decoder))))
        for module in (self.projector, self.seg_projector, self.det_projector, self.det_decoder):
            for p in module.parameters():  # visible weights, not PyTorch's small init
                torch.nn.init.normal_(p, std=0.3)
        self.size, self.clip_infix = size, clip_infix

    def state_dict(self) -> dict:
        state = {f'llm.{k}': v for k, v in self.llm.state_dict().items()}
        for k, v in self.clip.state_dict().items():
            k = k[len('vision_model.'):] if k.startswith('vision_model.') else k
            state[f'llm.vision_encoder.{"vision_model." if self.clip_infix else ""}{k}'] = v
        for name in ('projector', 'seg_projector', 'det_projector', 'det_decoder'):
            prefix = 'llm.vision_projector' if name == 'projector' else name
            state.update({f'{prefix}.{k}': v for k, v in getattr(self, name).state_dict().items()})
        state.update({f'visual_model.{k}': v for k, v in self.sam.state_dict().items()})
        state['visual_model.pixel_mean'] = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
        return {k: v.clone() for k, v in state.items()}

    @torch.no_grad()
    def forward(self, input_ids, clip_pixels, patch_id):
        """Last-layer hidden states and logits (u-LLaVA's LLM with the image spliced in)."""
        feats = self.clip(pixel_values=clip_pixels, output_hidden_states=True).hidden_states[-2]
        embeds = self.llm.model.embed_tokens(input_ids).clone()
        embeds[input_ids == patch_id] = self.projector(feats[:, 1:]).flatten(0, 1)
        hidden = self.llm.model(inputs_embeds=embeds).last_hidden_state  # after the final norm
        return hidden, self.llm.lm_head(hidden)

    @torch.no_grad()
    def mask_logits(self, state, sam_pixels, resized, ori):
        """mask_toolbox.preprocess (normalise, THEN pad), the text prompt, postprocess."""
        mean = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1) / 255
        std = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1) / 255
        x = (sam_pixels[:, :resized[0], :resized[1]] - mean) / std
        x = F.pad(x, (0, self.size - resized[1], 0, self.size - resized[0]))[None]
        pe = self.sam['prompt_encoder']
        sparse, dense = pe(points=None, boxes=None, masks=None)
        sparse = torch.cat([sparse, self.seg_projector(state)[None, None]], dim=1)
        low, _ = self.sam['mask_decoder'](
            image_embeddings=self.sam['image_encoder'](x), image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=False)
        up = F.interpolate(low, (self.size, self.size), mode='bilinear', align_corners=False)
        return F.interpolate(up[..., :resized[0], :resized[1]], ori, mode='bilinear',
                             align_corners=False)[0, 0]

    @torch.no_grad()
    def box(self, state, ori):
        """det_decoder(det_projector(state)), then DetToolBox.denormalize_padded_xyxy."""
        x0, y0, x1, y1 = self.det_decoder(self.det_projector(state)).tolist()
        h, w = ori
        pad_x, pad_y = ((h - w) / 2, 0) if h > w else (0, (w - h) / 2)
        side = max(h, w)
        return torch.tensor([x0 * side - pad_x, y0 * side - pad_y, x1 * side - pad_x,
                             y1 * side - pad_y])


def seg_sample(model, ori):
    """A RES/REC sample with its answer given (the reference's evaluation protocol)."""
    from ullava.datasets.conversation import tokenize_conversation
    from ullava.structures import ULLaVADataSample
    g = torch.Generator().manual_seed(3)
    tok = tokenize_conversation(
        model.tokenizer, 'conv_sep2',
        [(0, '<image>\nSegment and locate the circle.'),
         (1, 'Sure. Mask: [SEG]; Location: [LOC]; [tag]circle[/tag].')],
        model.image_tokens, model.video_tokens)
    clip, sam = model.vision_tower.image_size, model.mask_head.image_size
    resized = (round(ori[0] * sam / max(ori)), round(ori[1] * sam / max(ori)))
    inputs = dict(input_ids=torch.tensor(tok['input_ids']), labels=torch.tensor(tok['labels']),
                  prompt_len=tok['prompt_len'],
                  image=torch.randint(0, 255, (3, clip, clip), dtype=torch.uint8, generator=g),
                  sam_image=torch.randint(0, 255, (3, sam, sam), dtype=torch.uint8, generator=g))
    ds = ULLaVADataSample(metainfo=dict(ori_shape=ori, sam_resized_shape=resized))
    ds.gt_masks = torch.zeros(1, *ori, dtype=torch.bool)
    return inputs, ds


@pytest.fixture(scope='module')
def reference_cfg():
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / TINY_CFG))
    cfg.model.projector = 'mlp'  # the released layout: one Linear
    return cfg


@pytest.mark.parametrize('clip_infix', [True, False], ids=['transformers4', 'transformers5'])
def test_reference_layout_converts_with_no_flag_and_reproduces_the_reference(
        reference_cfg, tmp_path, clip_infix):
    from safetensors.torch import load_file

    from ullava.models.convert import convert_checkpoint
    from ullava.models.tiny_tokenizer import build_tiny_tokenizer
    from ullava.registry import MODELS
    base = len(build_tiny_tokenizer())
    ref = ReferenceModel(reference_cfg, base, clip_infix)
    released = ref.state_dict()
    src, dst = tmp_path / 'pytorch_model.bin', tmp_path / 'ullava.safetensors'
    torch.save(released, src)

    proc = run_tool(src, dst)  # no --config, no flag
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'UNMAPPED' not in proc.stdout and 'PROBLEM' not in proc.stdout
    model = MODELS.build(reference_cfg.model).eval()
    model.load_state_dict(load_file(str(dst)), strict=True)
    # the special-token rows sit at the ids the tokenizer gives each token string
    ids = model.tokenizer.convert_tokens_to_ids(REFERENCE_ORDER)
    for row, (token, new_id) in enumerate(zip(REFERENCE_ORDER, ids)):
        for key in ('llm.model.embed_tokens.weight', 'llm.lm_head.weight'):
            assert torch.equal(model.state_dict()[key][new_id], released[key][base + row]), token
    # the same conversion checked against the config: no problem either
    report = convert_checkpoint(src, tmp_path / 'checked.safetensors',
                                reference_cfg.model.to_dict())
    assert report.ok and report.notes == [], report.format()

    # outputs: the converted model vs the reference's computation on its own weights
    model.predict_protocol, model.box_source = 'teacher_forced', 'head'
    ori = (40, 50)
    inputs, ds = seg_sample(model, ori)
    data = model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), False)
    batch = data['inputs']
    input_ids = batch['input_ids']
    ours = model.hidden_states(batch, input_ids, batch['attention_mask'])
    ref_hidden, ref_logits = ref.forward(input_ids, batch['images'],
                                         model.token_ids['<image_patch>'])
    assert torch.allclose(ours, ref_hidden, atol=1e-5)
    assert torch.allclose(model.llm.get_output_embeddings()(ours), ref_logits, atol=1e-5)
    out = model(**data, mode='predict')[0]
    seg = int((input_ids[0] == model.token_ids['[SEG]']).nonzero()[0])
    loc = int((input_ids[0] == model.token_ids['[LOC]']).nonzero()[0])
    ref_mask = ref.mask_logits(ref_hidden[0, seg - 1], inputs['sam_image'].float() / 255,
                               ds.metainfo['sam_resized_shape'], ori)
    assert torch.allclose(out.pred_mask_scores[0], ref_mask.sigmoid(), atol=1e-5)
    assert torch.equal(out.pred_masks[0], ref_mask > 0) or \
        (out.pred_masks[0] != (ref_mask > 0)).sum() <= 2  # logits within 1e-5 of 0 may flip
    assert torch.allclose(out.pred_boxes[0], ref.box(ref_hidden[0, loc - 1], ori), atol=1e-4)


def test_token_rows_move_by_string_to_another_order():
    """A target tokenizer with ullava's pre-#12 order: each row follows its token string."""
    from ullava.models.convert import convert_state_dict
    base, width = 5, 3
    weight = torch.arange((base + 11) * width, dtype=torch.float32).view(base + 11, width)
    old_order = ['<image>', '<image_patch>', '<img_beg>', '</img_end>', '<video>',
                 '<video_patch>', '<vid_beg>', '</vid_end>', '[SEG]', '[LOC]', '[tag]', '[/tag]',
                 '[PAD]']
    target = {t: base + i for i, t in enumerate(old_order)}
    out, report = convert_state_dict({'llm.model.embed_tokens.weight': weight},
                                     target_token_ids=target, vocab_size=base + 13)
    rows = out['llm.model.embed_tokens.weight']
    assert torch.equal(rows[:base], weight[:base])
    for i, token in enumerate(REFERENCE_ORDER):
        assert torch.equal(rows[target[token]], weight[base + i]), token
    assert '[SEG] 12->13' in report.token_rows[0]
    # '<image>' and '<video>' have no released row: a problem, so nothing is written unflagged
    assert not report.ok and 'target rows [5, 9] (2) hold tokens the reference does not have' \
        in report.token_problems[0]


def test_convention_notes_name_each_variant():
    from ullava.models.convert import convention_notes
    assert convention_notes(dict(mask_head=dict(), box_head=dict())) == []
    notes = convention_notes(dict(mask_head=dict(remove_islands='largest', prompt_state='token',
                                                 mask_box='largest_region', prompt_norm='batch'),
                                  box_head=dict(output='sigmoid_cxcywh')))
    assert len(notes) == 5 and any('remove_islands' in n for n in notes)
    assert any('mask_box' in n for n in notes) and any('prompt_norm' in n for n in notes)
