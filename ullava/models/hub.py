"""Self-contained model folders: ``save_pretrained`` / ``from_pretrained``, and LoRA merging.

A folder written by :func:`save_pretrained` holds

* ``model.safetensors`` -- the full ullava state dict (LoRA merged into the LLM first);
* ``config.json`` -- the ``model`` section of the MMEngine config, made self-contained: no
  ``lora``, the tokenizer pointing at ``tokenizer/`` (relative to the folder), ``pretrained``
  folders of the LLM and the vision tower replaced by their HF configs, and no SAM checkpoint
  path (every weight is in ``model.safetensors``);
* ``tokenizer/`` -- the tokenizer with ullava's special tokens;
* ``README.md`` -- a short model card.

:func:`from_pretrained` rebuilds the model from ``config.json`` and loads the weights strictly.
"""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ullava.utils import UserError

WEIGHTS_NAME = 'model.safetensors'
CONFIG_NAME = 'config.json'
TOKENIZER_DIR = 'tokenizer'


# ---------------------------------------------------------------------------- checkpoints
def load_training_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state dict of a ``tools/train.py`` checkpoint (or of a plain weight file).

    MMEngine checkpoints are read through ullava's trust boundary (unpickled only inside a
    ullava work dir, see :mod:`ullava.utils.compat`); ``.safetensors`` files are read as such.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    from ullava.utils import install_compat
    install_compat()
    if not Path(path).is_file():
        raise UserError(f'checkpoint not found: {path}')
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise UserError(f'{path}: holds no state dict (a mapping of names to tensors, or an '
                        f'MMEngine checkpoint with one under "state_dict")')
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``: every key, the right shapes, or a clear error.

    A parameter whose saved dtype differs from the freshly built one takes the saved dtype, so
    a model comes back in the precision it was saved in.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))

    def names(keys: list[str]) -> str:
        return f'{len(keys)}: {keys[:6]}{" ..." if len(keys) > 6 else ""}'

    if missing or unexpected:
        hint = ''
        if any('lora_' in k for k in unexpected) or any('lora_' in k for k in missing):
            hint = ' (LoRA keys differ: does the `lora` of the config match the checkpoint?)'
        raise UserError(f'{source} does not fit the model: missing keys {names(missing)}; '
                        f'unexpected keys {names(unexpected)}{hint}')
    bad = [f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
           for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise UserError(f'{source}: shape mismatch in {len(bad)} tensors: {bad[:4]}')
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    for key, value in state.items():
        t = tensors.get(key)
        if t is not None and t.dtype != value.dtype and value.is_floating_point():
            t.data = t.data.to(value.dtype)
    model.load_state_dict(state, strict=True)


def build_from_checkpoint(model_cfg: Mapping, checkpoint: str | os.PathLike) -> nn.Module:
    """Build the model of ``model_cfg`` and load ``checkpoint`` into it strictly; eval mode."""
    from ullava.registry import MODELS
    model = MODELS.build(copy.deepcopy(model_cfg))
    load_state_strict(model, load_training_checkpoint(checkpoint), str(checkpoint))
    return model.eval()


# ---------------------------------------------------------------------------- LoRA
def merge_lora(model: nn.Module) -> bool:
    """Merge a peft-wrapped LLM's adapter into its weights, in place; False if there is none.

    ``model.llm`` becomes the plain LLM (``merge_and_unload``), so the state dict has the
    names of a model built without ``lora``.
    """
    llm = model.llm
    if not hasattr(llm, 'merge_and_unload'):
        return False
    model.llm = llm.merge_and_unload()
    return True


def merge_checkpoint(cfg: Any, checkpoint: str | os.PathLike, out: str | os.PathLike,
                     out_config: str | os.PathLike) -> None:
    """Merge the LoRA adapter of a checkpoint; write the plain state dict and a LoRA-free config.

    Args:
        cfg: the MMEngine config the checkpoint was trained with (its ``model.lora`` set).
        checkpoint: the LoRA checkpoint.
        out: the ``.safetensors`` file for the merged state dict.
        out_config: the config file to write: ``cfg`` without ``model.lora``.
    """
    from .convert import save_state_safetensors
    if cfg.model.get('lora') is None:
        raise UserError('the config has no model.lora: there is no adapter to merge (give the '
                        'config the checkpoint was trained with)')
    model = build_from_checkpoint(cfg.model, checkpoint)
    merge_lora(model)
    save_state_safetensors(model.state_dict(), out,
                           metadata={'lora_merged': 'True', 'merged_from': str(checkpoint)})
    cfg.model.pop('lora')
    Path(out_config).parent.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(out_config))


# ---------------------------------------------------------------------------- config
def _plain(value: Any) -> Any:
    """ConfigDicts, tuples and the like as JSON-ready values."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def hf_config_dict(config: Any) -> dict:
    """A transformers config as the dict ``build_llm`` / ``CLIPVisionTower`` take."""
    d = config.to_diff_dict()
    d.pop('transformers_version', None)
    return d


def exportable_model_cfg(model: nn.Module, model_cfg: Mapping,
                         tokenizer_path: str = TOKENIZER_DIR) -> dict:
    """The model config of a saved folder: self-contained, LoRA-free, JSON-serialisable.

    Args:
        model: the built model (after :func:`merge_lora`), read for its HF configs.
        model_cfg: the ``model`` section of the MMEngine config it was built from.
        tokenizer_path: where the saved tokenizer is (relative paths: to the folder).
    """
    cfg = _plain(copy.deepcopy(model_cfg))
    cfg.pop('lora', None)
    cfg['tokenizer'] = dict(path=tokenizer_path)
    llm = cfg.setdefault('llm', {})
    if llm.pop('pretrained', None) is not None:
        base = model.llm.get_base_model() if hasattr(model.llm, 'get_base_model') else model.llm
        llm['config'] = hf_config_dict(base.config)
    tower = cfg.setdefault('vision_tower', {})
    if tower.pop('pretrained', None) is not None:
        tower['config'] = hf_config_dict(model.vision_tower.clip.config)
    if isinstance(cfg.get('mask_head'), dict):
        cfg['mask_head'].pop('checkpoint', None)
    try:
        json.dumps(cfg)
    except TypeError as err:
        raise UserError(f'the model config is not JSON-serialisable ({err}); keep it to plain '
                        f'numbers, strings, lists and dicts') from None
    return cfg


# ---------------------------------------------------------------------------- model card
def _count(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def model_card(model: nn.Module, cfg: Mapping) -> str:
    """A short README.md: architecture, sizes, parameter counts, how to load."""
    llm = model.llm.config
    clip = model.vision_tower.clip.config
    rows = [(name, _count(child)) for name, child in model.named_children()
            if name != 'data_preprocessor']
    lines = [
        '# ullava model',
        '',
        'A u-LLaVA model exported by ullava (`tools/export_hf.py`): CLIP vision tower -> '
        'projector -> causal LLM; the hidden state of each `[SEG]` token prompts a SAM mask '
        'decoder, each `[LOC]` token is decoded into a box.',
        '',
        '## Architecture',
        '',
        f'- LLM: {llm.model_type}, {llm.num_hidden_layers} layers, hidden {llm.hidden_size}, '
        f'{llm.num_attention_heads} heads, vocabulary {llm.vocab_size}, '
        f'dtype {cfg.get("llm", {}).get("torch_dtype", "float32")}',
        f'- vision tower: CLIP ViT, {clip.num_hidden_layers} layers, hidden {clip.hidden_size}, '
        f'{clip.image_size} px, patch {clip.patch_size} ({model.image_tokens} image tokens, '
        f'{model.video_tokens} video tokens), features of layer {model.vision_tower.select_layer}',
        f'- projector: {cfg.get("projector", "mlp")}',
    ]
    if model.mask_head is not None:
        enc = model.mask_head.image_encoder
        lines.append(f'- mask head: SAM, image encoder {len(enc.blocks)} blocks of width '
                     f'{enc.patch_embed.proj.out_channels}, input {model.mask_head.image_size} px')
    else:
        lines.append('- mask head: none')
    lines.append('- box head: ' + ('[LOC] MLP decoder' if model.box_head is not None else 'none')
                 + f'; boxes from `{model.box_source}`')
    lines += ['', '## Parameters', '', '| module | parameters |', '|---|---:|']
    lines += [f'| {name} | {n:,} |' for name, n in rows]
    lines += [f'| total | {sum(n for _, n in rows):,} |', '',
              '## Load', '', '```python',
              'from ullava.models.hub import from_pretrained',
              'model = from_pretrained("PATH/TO/THIS/FOLDER")  # eval mode, strict weights',
              '```', '',
              f'`{CONFIG_NAME}` is the model section of the ullava config, `{WEIGHTS_NAME}` the '
              f'full state dict (any LoRA adapter merged), `{TOKENIZER_DIR}/` the tokenizer with '
              f'ullava\'s special tokens.', '']
    return '\n'.join(lines)


# ---------------------------------------------------------------------------- save / load
def save_pretrained(model: nn.Module, cfg: Any, out_dir: str | os.PathLike) -> Path:
    """Write ``model`` as a self-contained folder (see the module docstring).

    Args:
        model: a :class:`~ullava.models.ULLaVA`. A peft-wrapped LLM is merged IN PLACE.
        cfg: an MMEngine config (its ``model`` section is used) or the model section itself.
        out_dir: the folder to write (created; files in it are overwritten).
    """
    from .convert import save_state_safetensors
    model_cfg = cfg if 'type' in cfg else cfg.get('model')
    if model_cfg is None:
        raise UserError('save_pretrained: give an MMEngine config with a `model` section, or '
                        'that section itself')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged = merge_lora(model)
    config = exportable_model_cfg(model, model_cfg)
    model.tokenizer.save_pretrained(str(out / TOKENIZER_DIR))
    save_state_safetensors(model.state_dict(), out / WEIGHTS_NAME,
                           metadata={'lora_merged': str(merged)})
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + '\n')
    (out / 'README.md').write_text(model_card(model, config))
    return out


def from_pretrained(folder: str | os.PathLike) -> nn.Module:
    """Rebuild a model saved by :func:`save_pretrained`; weights loaded strictly; eval mode."""
    from safetensors.torch import load_file

    from ullava.registry import MODELS
    folder = Path(folder)
    config_file, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for f in (config_file, weights):
        if not f.is_file():
            raise UserError(f'{folder} is not a ullava model folder: {f.name} not found')
    try:
        cfg = json.loads(config_file.read_text())
    except ValueError as err:
        raise UserError(f'{config_file}: not valid JSON ({err})') from None
    tok = cfg.get('tokenizer', {})
    if tok.get('path') is not None and not Path(tok['path']).is_absolute():
        tok['path'] = str((folder / tok['path']).resolve())
    model = MODELS.build(cfg)
    load_state_strict(model, load_file(str(weights)), str(weights))
    return model.eval()
