"""Map a released u-LLaVA checkpoint onto ullava's state-dict layout.

The released model (``UllavaForCausalLM``) names its parts differently from ullava:

==========================================  =============================================
released                                    ullava
==========================================  =============================================
``llm.model.*`` (LLaMA body)                ``llm.model.*``
``llm.lm_head.weight``                      ``llm.lm_head.weight``
``llm.vision_encoder.vision_model.*``       ``vision_tower.clip.*`` (transformers >= 5 has
``llm.vision_encoder.*`` (saved by tf 5)    no ``vision_model`` level; older ones keep it)
``llm.vision_projector.*`` (mlp / mlp2x)    ``projector.*`` (``'mlp'`` is one Linear in both)
``seg_projector.*`` / ``text_hidden_fcs.*`` ``mask_head.seg_projector.*``
``visual_model.image_encoder.*`` etc.       ``mask_head.image_encoder.*`` etc. (SAM)
``det_projector.*``, ``det_decoder.*``      ``box_head.det_projector.*``, ``box_head.det_decoder.*``
==========================================  =============================================

``text_hidden_fcs`` is the name of the [SEG] MLP in the public u-LLaVA code; ``seg_projector``
the name in the grounding version. Buffers that the model recomputes (LLaMA's rotary
``inv_freq``, CLIP's ``position_ids``, SAM's pixel mean/std) are dropped and reported as
ignored; every other key that matches no rule is reported as unmapped.

Token rows: the rows of ``embed_tokens`` and ``lm_head`` are mapped BY TOKEN STRING, from the
reference's ids (``REFERENCE_ADDED_TOKENS`` after the base vocabulary) to the ids of the target
tokenizer (the ``--config``'s, or ullava's order in :mod:`ullava.models.tokens`); the base
vocabulary keeps its ids. A token either side lacks is a reported problem.

With ullava's defaults (docs/conventions.md) the converted model computes what the reference
computes; a config that switches on one of ullava's own variants (the [SEG] token's own state,
sigmoid boxes, padding SAM inputs before normalising) gets a NOTE in the report. Beyond the
weights (not checked here): the released model reads CLIP layer ``vision_hidden_layer`` (set
``vision_tower.select_layer`` to match) and orders a video's tokens temporal-then-spatial where
ullava puts the spatial tokens first.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from ullava.utils import UserError, load_external_checkpoint

# The reference's added tokens in ITS id order after the base vocabulary (32000..32010 on
# LLaMA), written out here independently of ullava's own list (ullava.models.tokens).
REFERENCE_ADDED_TOKENS = ('[PAD]', '<image_patch>', '<video_patch>', '<img_beg>', '</img_end>',
                          '<vid_beg>', '</vid_end>', '[SEG]', '[LOC]', '[tag]', '[/tag]')
# Released keys whose rows are token ids.
TOKEN_ROW_KEYS = ('llm.model.embed_tokens.weight', 'llm.lm_head.weight')

# Keys the released checkpoint may hold that the model recomputes; dropped, reported as ignored.
IGNORED_PATTERNS = (
    r'(^|\.)rotary_emb\.inv_freq$',            # LLaMA rotary frequencies (older transformers)
    r'^llm\.vision_encoder\..*position_ids$',  # CLIP position ids (older transformers)
    r'^visual_model\.pixel_(mean|std)$',       # SAM normalisation constants (fixed values)
)


@functools.lru_cache(maxsize=1)
def _clip_prefix() -> str:
    """ullava's prefix for CLIP's vision transformer, for the installed transformers.

    transformers 5 dropped the ``vision_model`` level of ``CLIPVisionModel``'s state dict;
    earlier versions keep it. A one-layer CLIP (milliseconds) tells which this is.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModel
    probe = CLIPVisionModel(CLIPVisionConfig(hidden_size=8, intermediate_size=8,
                                             num_hidden_layers=1, num_attention_heads=1,
                                             image_size=8, patch_size=8))
    nested = any(k.startswith('vision_model.') for k in probe.state_dict())
    return 'vision_tower.clip.vision_model.' if nested else 'vision_tower.clip.'


def rules() -> list[tuple[str, str]]:
    """(released prefix, ullava prefix) pairs; the first matching prefix wins."""
    return [
        ('llm.vision_encoder.vision_model.', _clip_prefix()),
        ('llm.vision_encoder.', _clip_prefix()),  # saved under transformers 5: no infix
        ('llm.vision_projector.', 'projector.'),
        ('llm.model.', 'llm.model.'),
        ('llm.lm_head.', 'llm.lm_head.'),
        ('seg_projector.', 'mask_head.seg_projector.'),
        ('text_hidden_fcs.', 'mask_head.seg_projector.'),
        ('visual_model.image_encoder.', 'mask_head.image_encoder.'),
        ('visual_model.prompt_encoder.', 'mask_head.prompt_encoder.'),
        ('visual_model.mask_decoder.', 'mask_head.mask_decoder.'),
        ('det_projector.', 'box_head.det_projector.'),
        ('det_decoder.', 'box_head.det_decoder.'),
    ]


def map_key(key: str) -> str | None:
    """ullava's name for one released key; None when no rule matches."""
    for src, dst in rules():
        if key.startswith(src):
            return dst + key[len(src):]
    return None


def is_ignored(key: str) -> bool:
    return any(re.search(p, key) for p in IGNORED_PATTERNS)


@dataclass
class ConversionReport:
    """What a conversion did; ``ok`` when nothing was lost or mismatched."""

    source: str = ''
    converted: dict[str, str] = field(default_factory=dict)   # released key -> ullava key
    ignored: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)        # two released keys, one target
    checked_against: str | None = None                          # the config, if any
    missing: list[str] = field(default_factory=list)           # model keys nobody provides
    unexpected: list[str] = field(default_factory=list)        # converted keys the model lacks
    shape_mismatch: list[str] = field(default_factory=list)    # 'key: file (..) vs model (..)'
    token_rows: list[str] = field(default_factory=list)        # what the row mapping did
    token_problems: list[str] = field(default_factory=list)    # tokens either side lacks
    notes: list[str] = field(default_factory=list)             # non-reference conventions

    @property
    def ok(self) -> bool:
        return not (self.unmapped or self.duplicates or self.missing or self.unexpected
                    or self.shape_mismatch or self.token_problems)

    def problems(self) -> str:
        """One line naming every kind of problem (the CLI's error line)."""
        parts = []
        for name, items in (('unmapped key', self.unmapped), ('duplicate target', self.duplicates),
                            ('token row problem', self.token_problems),
                            ('shape mismatch', self.shape_mismatch),
                            ('missing key', self.missing), ('unexpected key', self.unexpected)):
            if items:
                shown = ', '.join(items[:3]) + (', ...' if len(items) > 3 else '')
                parts.append(f'{len(items)} {name}(s) ({shown})')
        return '; '.join(parts)

    def format(self, limit: int = 40) -> str:
        """A multi-line, human-readable report."""
        groups: dict[str, int] = {}
        for dst in self.converted.values():
            groups[dst.split('.')[0]] = groups.get(dst.split('.')[0], 0) + 1
        lines = [f'converted {len(self.converted)} tensors from {self.source}: '
                 + ', '.join(f'{k} {v}' for k, v in groups.items())]

        def section(title: str, items: list[str]) -> None:
            if not items:
                return
            lines.append(f'{title} ({len(items)}):')
            lines.extend(f'  {k}' for k in items[:limit])
            if len(items) > limit:
                lines.append(f'  ... and {len(items) - limit} more')

        section('ignored (recomputed by the model)', self.ignored)
        section('UNMAPPED (no rule; not written)', self.unmapped)
        section('DUPLICATE targets (two released keys map to one ullava key)', self.duplicates)
        section('token rows (mapped by token string)', self.token_rows)
        section('TOKEN ROW PROBLEMS', self.token_problems)
        if self.checked_against is not None:
            lines.append(f'checked against the model of {self.checked_against}:')
            section('SHAPE MISMATCH', self.shape_mismatch)
            section('MISSING (model keys the checkpoint does not provide)', self.missing)
            section('UNEXPECTED (converted keys the model does not have)', self.unexpected)
            if not (self.shape_mismatch or self.missing or self.unexpected):
                lines.append('  every model key present with the right shape')
        lines.extend('NOTE ' + note for note in self.notes)
        return '\n'.join(lines)


def reference_token_rows(rows: int) -> list[str | None]:
    """The token string of each row of a released ``embed_tokens`` / ``lm_head`` (None for the
    base vocabulary, whose ids do not change)."""
    base = rows - len(REFERENCE_ADDED_TOKENS)
    return [None] * base + list(REFERENCE_ADDED_TOKENS)


def ullava_token_ids(base: int) -> tuple[dict[str, int], int]:
    """ullava's ids of the added tokens after a base vocabulary of ``base`` tokens, and the
    vocabulary size: what :func:`ullava.models.build_tokenizer` gives (used without a config)."""
    from .tokens import ADDED_TOKENS
    return {t: base + i for i, t in enumerate(ADDED_TOKENS)}, base + len(ADDED_TOKENS)


def remap_token_rows(weight: torch.Tensor, target_ids: Mapping[str, int] | None,
                     vocab_size: int | None, key: str) -> tuple[torch.Tensor, str, list[str]]:
    """Rows of a released token matrix moved from the reference's ids to the target's, by token
    string. Returns the new matrix, a one-line account and the problems (empty when every
    target row got exactly one released row)."""
    rows = reference_token_rows(weight.shape[0])
    base = rows.count(None)
    if base <= 0:
        return weight, '', [f'{key}: {weight.shape[0]} rows cannot hold the '
                            f'{len(REFERENCE_ADDED_TOKENS)} added tokens of the reference']
    if target_ids is None:
        target_ids, vocab_size = ullava_token_ids(base)
    elif vocab_size is None:
        vocab_size = max([base + len(REFERENCE_ADDED_TOKENS), *(i + 1 for i in target_ids.values())])
    out = weight.new_zeros((vocab_size, *weight.shape[1:]))
    filled = torch.zeros(vocab_size, dtype=torch.bool)
    out[:base], filled[:base] = weight[:base], True
    problems, moved = [], []
    for row, token in enumerate(rows[base:], start=base):
        target = target_ids.get(token)
        if target is None or not base <= target < vocab_size or filled[target]:
            problems.append(f'{key}: the reference\'s {token} (row {row}) has no free row in the '
                            f'target vocabulary (its id there: {target}; base vocabulary {base})')
            continue
        out[target], filled[target] = weight[row], True
        if target != row:
            moved.append(f'{token} {row}->{target}')
    if not filled.all():
        empty = (~filled).nonzero()[:, 0].tolist()
        problems.append(f'{key}: target rows {empty[:5]} ({len(empty)}) hold tokens the '
                        f'reference does not have')
    account = (f'{key}: {len(REFERENCE_ADDED_TOKENS)} added-token rows after {base} base rows, '
               + (f'{len(moved)} moved ({", ".join(moved)})' if moved else 'none moved'))
    return out, account, problems


def convention_notes(model_cfg: Mapping) -> list[str]:
    """Which options of ``model_cfg`` differ from the reference's conventions (so converted
    weights will not compute what the reference computes)."""
    notes = []
    for head in ('mask_head', 'box_head'):
        if (model_cfg.get(head) or {}).get('prompt_state', 'before') != 'before':
            notes.append(f"{head}.prompt_state is not 'before': released weights were trained on "
                         f'the state before each [SEG]/[LOC]')
    if (model_cfg.get('box_head') or {}).get('output', 'xyxy') != 'xyxy':
        notes.append("box_head.output is not 'xyxy': the released box decoder outputs an "
                     "unconstrained xyxy; its boxes are wrong under a sigmoid")
    if (model_cfg.get('data_preprocessor') or {}).get('sam_pad', 'after_norm') != 'after_norm':
        notes.append("data_preprocessor.sam_pad is not 'after_norm': the reference pads SAM "
                     "inputs with zeros after normalising")
    if (model_cfg.get('mask_head') or {}).get('remove_islands') is not None:
        notes.append('mask_head.remove_islands is set: predicted masks (and their boxes) drop '
                     "disconnected regions; the paper's numbers keep every pixel over 0.5")
    if (model_cfg.get('mask_head') or {}).get('mask_box', 'tight') != 'tight':
        notes.append("mask_head.mask_box is not 'tight': boxes from masks are their largest "
                     "regions' boxes; the paper's are the whole masks' tight boxes")
    if (model_cfg.get('mask_head') or {}).get('prompt_norm') is not None:
        notes.append('mask_head.prompt_norm is set: the [SEG] states are standardised before '
                     'seg_projector, which released weights were not trained with (and which '
                     'holds no running statistics for them)')
    return notes


def convert_state_dict(state: Mapping[str, torch.Tensor],
                       reference: Mapping[str, Sequence[int] | torch.Tensor] | None = None,
                       source: str = '', target_token_ids: Mapping[str, int] | None = None,
                       vocab_size: int | None = None
                       ) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Rename a released state dict to ullava's names and move its token rows to ullava's ids.

    Args:
        state: the released state dict.
        reference: ullava key -> shape (or tensor) of the target model, to check against.
        source: a name for the report.
        target_token_ids: token string -> id in the target tokenizer, for the reference's added
            tokens; None: ullava's order (``ullava.models.tokens.ADDED_TOKENS``).
        vocab_size: rows of the target's token matrices (with ``target_token_ids``).

    Returns:
        The converted state dict (unmapped and ignored keys left out) and the report.
    """
    report = ConversionReport(source=source)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if is_ignored(key):
            report.ignored.append(key)
            continue
        target = map_key(key)
        if target is None:
            report.unmapped.append(key)
            continue
        if target in out:
            report.duplicates.append(f'{key} -> {target}')
            continue
        if key in TOKEN_ROW_KEYS:
            value, account, problems = remap_token_rows(value, target_token_ids, vocab_size, key)
            report.token_rows += [account] if account else []
            report.token_problems += problems
        out[target] = value
        report.converted[key] = target
    if reference is not None:
        shapes = {k: tuple(v.shape) if hasattr(v, 'shape') else tuple(v)
                  for k, v in reference.items()}
        report.missing = sorted(set(shapes) - set(out))
        report.unexpected = sorted(set(out) - set(shapes))
        report.shape_mismatch = [f'{k}: checkpoint {tuple(v.shape)} vs model {shapes[k]}'
                                 for k, v in out.items() if k in shapes
                                 and tuple(v.shape) != shapes[k]]
    return out, report


# ---------------------------------------------------------------------------- reading
def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a loaded object: itself, or its 'state_dict' / 'model' / 'module'."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in ('state_dict', 'model', 'module'):
            if isinstance(obj.get(key), Mapping):
                return _unwrap(obj[key], path)
    raise UserError(f'{path}: not a state dict (a mapping of names to tensors, or a dict '
                    f'holding one under state_dict / model / module)')


def _index_shards(folder: Path) -> list[Path] | None:
    """Shard files named by a HF ``*.index.json`` in ``folder`` (safetensors preferred)."""
    for name in ('model.safetensors.index.json', 'pytorch_model.bin.index.json'):
        index = folder / name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())['weight_map']
            except (ValueError, KeyError) as err:
                raise UserError(f'{index}: not a valid index ({type(err).__name__}: {err})') \
                    from None
            return [folder / f for f in sorted(set(weight_map.values()))]
    return None


def checkpoint_files(path: str | os.PathLike) -> list[Path]:
    """The weight files of a checkpoint: one file, or the (sharded) files of a HF folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f'checkpoint not found: {path}')
    shards = _index_shards(path)
    if shards is None:
        for pattern in ('model.safetensors', 'pytorch_model.bin', '*.safetensors', '*.bin',
                        '*.pth'):
            shards = sorted(path.glob(pattern))
            if shards:
                break
    if not shards:
        raise UserError(f'{path}: no weights found (expected *.safetensors / *.bin files, '
                        f'optionally with model.safetensors.index.json)')
    missing = [str(s) for s in shards if not s.is_file()]
    if missing:
        raise UserError(f'{path}: shard files named by the index are missing: {missing[:5]}')
    return shards


def load_released_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a released checkpoint (file or HF folder) into one state dict, weights only."""
    state: dict[str, torch.Tensor] = {}
    for file in checkpoint_files(path):
        part = _unwrap(load_external_checkpoint(file), file)
        clash = set(part) & set(state)
        if clash:
            raise UserError(f'{file}: keys also found in another shard: {sorted(clash)[:5]}')
        state.update(part)
    return state


def weightless_model_cfg(model_cfg: Mapping) -> dict:
    """``model_cfg`` without LoRA and without weight loading, for building a model's skeleton.

    ``pretrained`` folders of the LLM and the vision tower are replaced by the HF configs read
    from them (config.json only) and the SAM checkpoint path is dropped, so checking a 7B
    config reads no weights.
    """
    from transformers import AutoConfig, CLIPVisionConfig

    from .hub import hf_config_dict
    from .language import _check_folder
    cfg = copy.deepcopy(dict(model_cfg))
    cfg.pop('lora', None)
    for key, config_class in (('llm', AutoConfig), ('vision_tower', CLIPVisionConfig)):
        part = dict(cfg.get(key) or {})
        if part.get('pretrained') is not None:
            folder = _check_folder(part.pop('pretrained'), key)
            part['config'] = hf_config_dict(config_class.from_pretrained(str(folder),
                                                                         local_files_only=True))
            cfg[key] = part
    if isinstance(cfg.get('mask_head'), Mapping):
        head = dict(cfg['mask_head'])
        checkpoint = head.pop('checkpoint', None)
        if head.get('encoder') is None and checkpoint is not None:
            # the encoder's size comes from the checkpoint: its shapes (not its tensors) tell
            from .heads.mask_head import read_sam_shapes, sam_encoder_from_shapes
            head['encoder'] = sam_encoder_from_shapes(read_sam_shapes(checkpoint),
                                                      f'SAM checkpoint {checkpoint}')
        cfg['mask_head'] = head
    return cfg


def target_token_ids(model_cfg: Mapping) -> dict[str, int]:
    """The config's tokenizer ids of the reference's added tokens (tokenizer files only)."""
    from .language import build_tokenizer
    vocab = build_tokenizer(**model_cfg['tokenizer']).get_vocab()
    return {t: vocab[t] for t in REFERENCE_ADDED_TOKENS if t in vocab}


def reference_shapes(model_cfg: Mapping) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the model a config builds, without LoRA (released weights are merged).

    Built on the meta device from :func:`weightless_model_cfg`: no weights are read or
    allocated.
    """
    from ullava.registry import MODELS
    with torch.device('meta'):
        model = MODELS.build(weightless_model_cfg(model_cfg))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------- writing
def save_state_safetensors(state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                           metadata: dict[str, str] | None = None) -> None:
    """Write a state dict as safetensors (tensors sharing memory, e.g. tied ones, are copied)."""
    from safetensors.torch import save_file
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        value = value.detach().contiguous()
        if value.numel():
            storage = value.untyped_storage().data_ptr()
            if storage in seen:
                value = value.clone()
            seen.add(value.untyped_storage().data_ptr())
        out[key] = value
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path), metadata={'format': 'pt', **(metadata or {})})


class ConversionError(UserError):
    """A conversion that would lose or mismatch weights; ``report`` says which."""

    def __init__(self, message: str, report: ConversionReport) -> None:
        super().__init__(message)
        self.report = report


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike,
                       model_cfg: Mapping | None = None, config_name: str | None = None,
                       allow_partial: bool = False,
                       log: Callable[[str], None] | None = None) -> ConversionReport:
    """Convert a released checkpoint to a ullava safetensors file.

    Args:
        src: a ``.bin`` / ``.pth`` / ``.safetensors`` file, or a HF folder (sharded or not).
        dst: the ``.safetensors`` file to write.
        model_cfg: the ``model`` section of a ullava config, to check keys and shapes against.
        config_name: what to call that config in the report.
        allow_partial: write ``dst`` even when keys are unmapped, missing or mismatched.
        log: called with the formatted report before anything is decided (e.g. ``print``).

    Returns:
        The report. Raises :class:`ConversionError` (nothing written) when the report is not
        ok and ``allow_partial`` is false.
    """
    if Path(dst).suffix != '.safetensors':
        raise UserError(f'output must be a .safetensors file, got {dst}')
    state = load_released_state(src)
    reference = token_ids = vocab_size = None
    if model_cfg is not None:
        reference = reference_shapes(model_cfg)
        token_ids = target_token_ids(model_cfg)
        vocab_size = reference.get('llm.model.embed_tokens.weight', (None,))[0]
    converted, report = convert_state_dict(state, reference, source=str(src),
                                           target_token_ids=token_ids, vocab_size=vocab_size)
    if model_cfg is not None:
        report.checked_against = config_name or 'the given config'
        report.notes = convention_notes(model_cfg)
    if log is not None:
        log(report.format())
    if not report.converted:
        raise UserError(f'{src}: no key matches the released u-LLaVA layout (first keys: '
                        f'{list(state)[:5]}); nothing written')
    if not report.ok and not allow_partial:
        raise ConversionError(f'{src}: {report.problems()}; nothing written (see the report, '
                              f'or pass --allow-partial to write the converted part anyway)',
                              report)
    save_state_safetensors(converted, dst, metadata={'converted_from': str(src)})
    return report

