"""Self-contained model folders that ullava and Hugging Face both load, and LoRA merging.

A folder written by :func:`save_pretrained` holds

* ``model.safetensors`` -- the full ullava state dict (LoRA merged into the LLM first);
* ``config.json`` -- a Hugging Face config (:class:`ULLaVAConfig`, ``model_type='ullava'``) whose
  ``ullava_model`` is the ``model`` section of the MMEngine config, made self-contained: no
  ``lora``, the tokenizer pointing at ``tokenizer/`` (relative to the folder), ``pretrained``
  folders of the LLM and the vision tower replaced by their HF configs, and no SAM checkpoint
  path (every weight is in ``model.safetensors``); its ``auto_map`` names the two files below;
* ``configuration_ullava.py`` / ``modeling_ullava.py`` -- the ``trust_remote_code`` files: they
  import :class:`ULLaVAConfig` / :class:`ULLaVAForCausalLM` from the installed ullava package;
* ``tokenizer/`` -- the tokenizer with ullava's special tokens;
* ``README.md`` -- a short model card.

:func:`from_pretrained` rebuilds the ullava model from ``config.json`` and loads the weights
strictly; ``transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)``
(or ``AutoModel``) gives the same model wrapped in :class:`ULLaVAForCausalLM`.
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
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, PretrainedConfig,
                          PreTrainedModel)

from ullava.utils import UserError

WEIGHTS_NAME = 'model.safetensors'
CONFIG_NAME = 'config.json'
TOKENIZER_DIR = 'tokenizer'
# the trust_remote_code files of an export: (module file, class) per Auto class
REMOTE_CODE = {'AutoConfig': ('configuration_ullava', 'ULLaVAConfig'),
               'AutoModel': ('modeling_ullava', 'ULLaVAForCausalLM'),
               'AutoModelForCausalLM': ('modeling_ullava', 'ULLaVAForCausalLM')}


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
              '## Load', '',
              'With ullava installed (`pip install -e .` in a ullava checkout), either of:', '',
              '```python',
              'from transformers import AutoModelForCausalLM  # or AutoModel',
              'model = AutoModelForCausalLM.from_pretrained("PATH/TO/THIS/FOLDER", '
              'trust_remote_code=True)',
              'model.model  # the ullava.models.ULLaVA itself (eval mode, strict weights)',
              '',
              'from ullava.models.hub import from_pretrained',
              'model = from_pretrained("PATH/TO/THIS/FOLDER")  # the ULLaVA directly',
              '```', '',
              '`trust_remote_code=True` runs `configuration_ullava.py` and `modeling_ullava.py` of '
              'this folder: each only imports its class from the installed ullava package, which '
              'builds the model from `config.json` and loads the weights strictly. '
              '`model(inputs, data_samples, mode="predict")` is the MMEngine forward of ullava '
              '(see `ullava.apis.ULLaVAInferencer` for images and prompts).', '',
              f'`{CONFIG_NAME}` holds the model section of the ullava config under `ullava_model`, '
              f'`{WEIGHTS_NAME}` the full state dict (any LoRA adapter merged), `{TOKENIZER_DIR}/` '
              f'the tokenizer with ullava\'s special tokens.', '']
    return '\n'.join(lines)


# ---------------------------------------------------------------------------- save / load
def _remote_code(cls_name: str) -> str:
    """A ``trust_remote_code`` file of an export: it imports its class from installed ullava."""
    return (f'"""{cls_name} of a ullava export (``trust_remote_code=True``). The class lives\n'
            f'in the installed ullava package (``pip install -e .`` in a ullava checkout)."""\n'
            f'from ullava.models.hub import {cls_name}\n\n__all__ = [{cls_name!r}]\n')


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
    hf_config = ULLaVAConfig(ullava_model=config, architectures=[ULLaVAForCausalLM.__name__],
                             auto_map={auto: f'{module}.{name}'
                                       for auto, (module, name) in REMOTE_CODE.items()})
    hf_config.to_json_file(str(out / CONFIG_NAME))
    for module, name in set(REMOTE_CODE.values()):
        (out / f'{module}.py').write_text(_remote_code(name))
    (out / 'README.md').write_text(model_card(model, config))
    return out


def build_exported_model(model_cfg: Mapping, folder: str | os.PathLike) -> nn.Module:
    """Build the model of an export's ``ullava_model`` (its tokenizer path is relative to
    ``folder``); the weights are as built, not loaded."""
    from ullava.registry import MODELS
    cfg = copy.deepcopy(dict(model_cfg))
    tok = dict(cfg.get('tokenizer') or {})
    if tok.get('path') is not None and not Path(tok['path']).is_absolute():
        tok['path'] = str((Path(folder) / tok['path']).resolve())
    cfg['tokenizer'] = tok
    return MODELS.build(cfg)


def _read_folder(folder: str | os.PathLike) -> tuple[dict, Path]:
    """The ``config.json`` dict and the weights file of an export; a clear error if either is
    missing."""
    folder = Path(folder)
    config_file, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for f in (config_file, weights):
        if not f.is_file():
            raise UserError(f'{folder} is not a ullava model folder: {f.name} not found')
    try:
        return json.loads(config_file.read_text()), weights
    except ValueError as err:
        raise UserError(f'{config_file}: not valid JSON ({err})') from None


def from_pretrained(folder: str | os.PathLike) -> nn.Module:
    """Rebuild a model saved by :func:`save_pretrained`; weights loaded strictly; eval mode."""
    from safetensors.torch import load_file
    config, weights = _read_folder(folder)
    # folders exported before config.json became a Hugging Face config hold the model dict itself
    model = build_exported_model(config.get('ullava_model', config), folder)
    load_state_strict(model, load_file(str(weights)), str(weights))
    return model.eval()


# ---------------------------------------------------------------------------- Hugging Face
class ULLaVAConfig(PretrainedConfig):
    """The Hugging Face config of an exported folder (``model_type='ullava'``).

    Args:
        ullava_model: the ``model`` section of the ullava (MMEngine) config, self-contained
            (:func:`exportable_model_cfg`); :class:`ULLaVAForCausalLM` builds it.
    """

    model_type = 'ullava'

    def __init__(self, ullava_model: dict | None = None, **kwargs) -> None:
        self.ullava_model = dict(ullava_model or {})
        # the LLM inside ties its own embeddings (or not); nothing is tied at this level
        kwargs['tie_word_embeddings'] = False
        super().__init__(**kwargs)


class ULLaVAForCausalLM(PreTrainedModel):
    """A ullava model as a transformers ``PreTrainedModel``: what ``AutoModelForCausalLM`` /
    ``AutoModel`` return for an export.

    ``model`` is the :class:`~ullava.models.ULLaVA` itself, and ``forward`` is its MMEngine
    forward (``inputs`` as its data preprocessor makes them, ``data_samples``, ``mode``).
    """

    config_class = ULLaVAConfig
    base_model_prefix = 'model'

    def __init__(self, config: ULLaVAConfig) -> None:
        super().__init__(config)
        if not config.ullava_model:
            raise UserError('ULLaVAConfig.ullava_model is empty: load a folder written by '
                            'tools/export_hf.py')
        self.model = build_exported_model(config.ullava_model, config.name_or_path or '.')
        self.post_init()

    def init_weights(self) -> None:
        """Nothing to do: the ullava model is initialised as it is built and
        :meth:`from_pretrained` loads every weight; transformers' re-initialisation of all the
        LLM's weights would only cost time."""

    def get_input_embeddings(self) -> nn.Module:
        return self.model.llm.get_input_embeddings()

    def forward(self, inputs: dict, data_samples: list | None = None, mode: str = 'predict'):
        return self.model(inputs, data_samples, mode=mode)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args,
                        config: ULLaVAConfig | None = None, dtype=None, device_map=None,
                        **kwargs) -> 'ULLaVAForCausalLM':
        """Load an exported (local) folder: weights strictly, eval mode.

        ``dtype`` / ``torch_dtype`` and a single-device ``device_map`` ('cpu', 'cuda:0') are
        honoured; the Hub's download options are accepted and unused. The weights load through
        ullava's strict loader, not transformers': transformers 5 builds a model on the meta
        device and re-creates only the buffers it knows, which would lose SAM's and the data
        preprocessor's.
        """
        from safetensors.torch import load_file
        folder = Path(pretrained_model_name_or_path)
        _, weights = _read_folder(folder)
        if config is None:
            config = cls.config_class.from_pretrained(str(folder))
        config.name_or_path = str(folder)
        model = cls(config)
        load_state_strict(model.model, load_file(str(weights)), str(weights))
        dtype = dtype if dtype is not None else kwargs.get('torch_dtype')
        if isinstance(dtype, str) and dtype != 'auto':
            dtype = getattr(torch, dtype)
        if isinstance(dtype, torch.dtype):
            model.to(dtype)
        if isinstance(device_map, (str, torch.device)):
            model.to(device_map)
        return model.eval()

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Write the folder as :func:`save_pretrained` does (transformers' own would prefix every
        weight name with ``model.`` and copy this module's source into the folder)."""
        save_pretrained(self.model, self.config.ullava_model, save_directory)


AutoConfig.register(ULLaVAConfig.model_type, ULLaVAConfig, exist_ok=True)
for _auto in (AutoModel, AutoModelForCausalLM):
    _auto.register(ULLaVAConfig, ULLaVAForCausalLM, exist_ok=True)
