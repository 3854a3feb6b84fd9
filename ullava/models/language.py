"""The LLM and its tokenizer: any transformers causal LM, loaded from a local folder or built
from a config dict (the tiny configs), plus ullava's special tokens."""
from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer,
                          PreTrainedModel, PreTrainedTokenizerBase)

from ullava.utils import UserError

from .tokens import ADDED_TOKENS, PAD, SPECIAL_TOKENS


def _check_folder(path: str | os.PathLike, what: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f'{what}: folder not found: {folder} (weights load from local folders only)')
    return folder


def add_special_tokens(tokenizer: PreTrainedTokenizerBase, pad_with_unk: bool = True,
                       extra_tokens: Sequence[str] = ()) -> PreTrainedTokenizerBase:
    """Add ullava's tokens after the base vocabulary in the reference's order (``ADDED_TOKENS``),
    then ``extra_tokens`` (the tokens of plugin heads) in their given order, so
    a released checkpoint's rows keep their ids whatever a plugin adds.

    ``pad_with_unk``: pad with ``<unk>`` as the reference's stage II does (Vicuna has no pad
    token; the ``[PAD]`` row exists only for the checkpoint layout). A tokenizer without an unk
    token keeps its own pad token, or pads with ``[PAD]``. Padding is always masked out, so the
    choice changes no output; it only has to agree with the reference's data.
    """
    missing = [t for t in ADDED_TOKENS if t not in tokenizer.get_vocab()]
    if missing:  # one call: consecutive ids in list order
        tokenizer.add_tokens(missing, special_tokens=True)
    extra = [t for t in dict.fromkeys(extra_tokens) if t not in tokenizer.get_vocab()]
    if extra:
        tokenizer.add_tokens(extra, special_tokens=True)
    if pad_with_unk and tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    elif tokenizer.pad_token is None:
        tokenizer.pad_token = PAD
    return tokenizer


# Packages transformers needs to read a slow-only tokenizer folder; (module, pip name).
_SENTENCEPIECE_DEPS = (('sentencepiece', 'sentencepiece'), ('google.protobuf', 'protobuf'))


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _check_tokenizer_deps(folder: Path) -> None:
    """One clear line when a package the folder's tokenizer files need is not installed.

    Without it transformers 5 tries every reader in turn and ends ~60 lines later in
    ``tiktoken is required to read a tiktoken file``, naming the wrong package.
    """
    if (folder / 'tokenizer.json').is_file():
        return  # the fast tokenizer file needs only `tokenizers`
    needs = []
    if (folder / 'tokenizer.model').is_file():  # sentencepiece model (Vicuna / LLaMA folders)
        needs = [pip for module, pip in _SENTENCEPIECE_DEPS if not _importable(module)]
    elif any(folder.glob('*.tiktoken')) and not _importable('tiktoken'):
        needs = ['tiktoken']
    if needs:
        raise UserError(f'tokenizer {folder}: reading its tokenizer files needs the Python '
                        f'package(s) {", ".join(needs)}: pip install {" ".join(needs)}')


def _load_tokenizer_folder(folder: Path) -> PreTrainedTokenizerBase:
    _check_tokenizer_deps(folder)
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (ImportError, ValueError) as err:
        # a dependency transformers found missing on a path the check above does not know
        package = next((p for p in ('sentencepiece', 'protobuf', 'tiktoken')
                        if p in str(err).lower()), None)
        if package is None:
            raise
        raise UserError(f'tokenizer {folder}: needs the Python package {package}: '
                        f'pip install {package} ({str(err).splitlines()[0][:120]})') from None


@functools.lru_cache(maxsize=8)
def _cached_tokenizer(path: str | None, tiny: bool, pad_with_unk: bool,
                      extra_tokens: tuple[str, ...] = ()) -> PreTrainedTokenizerBase:
    if tiny:
        from ullava.models.tiny_tokenizer import build_tiny_tokenizer
        tokenizer = build_tiny_tokenizer()
    else:
        tokenizer = _load_tokenizer_folder(_check_folder(path, 'tokenizer'))
    return add_special_tokens(tokenizer, pad_with_unk, extra_tokens)


def build_tokenizer(path: str | None = None, tiny: bool = False, pad_with_unk: bool = True,
                    extra_tokens: Sequence[str] = ()) -> PreTrainedTokenizerBase:
    """Tokenizer from a local folder, or the built-in tiny one; with ullava's special tokens.

    ``extra_tokens``: tokens of plugin heads beyond the reference's (added after them). The
    config's one ``tokenizer`` dict goes both to the model and to the data pipeline's
    ``TokenizeConversation``, so both tokenise a plugin's token alike; the model checks that
    every head's token is there.

    A folder with only a sentencepiece ``tokenizer.model`` (Vicuna-7B v1.1) needs the
    ``sentencepiece`` and ``protobuf`` packages; a missing one is one clear error.
    """
    if not tiny and path is None:
        raise UserError('tokenizer: give `path` (a local tokenizer folder) or `tiny=True`')
    return _cached_tokenizer(None if tiny else str(path), tiny, pad_with_unk, tuple(extra_tokens))


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """Map each special token to its id; a clear error if the tokenizer lacks any."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing or tokenizer.pad_token_id is None:
        raise UserError(f'tokenizer {getattr(tokenizer, "name_or_path", "")!r} lacks ullava special '
                        f'tokens {missing or ["a pad token"]}; build it with '
                        f'ullava.models.build_tokenizer')
    return {t: vocab[t] for t in SPECIAL_TOKENS}


def quantization_config(load_in_4bit: bool):
    """QLoRA's 4-bit NF4 quantisation (bitsandbytes); it needs a CUDA GPU, so refuse clearly."""
    if not load_in_4bit:
        return None
    if not torch.cuda.is_available():
        raise UserError('llm.load_in_4bit (QLoRA) needs a CUDA GPU; none is available here. '
                        'Use plain LoRA (model.lora) on CPU.')
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError('llm.load_in_4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes') \
            from None
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4',
                              bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def build_llm(tokenizer: PreTrainedTokenizerBase, pretrained: str | None = None,
              config: dict | None = None, torch_dtype: str = 'float32',
              gradient_checkpointing: bool = False, load_in_4bit: bool = False,
              attn_implementation: str | None = None) -> PreTrainedModel:
    """A causal LM from a local HF folder (``pretrained``) or from a config dict (random init).

    ``load_in_4bit`` loads the pretrained LLM quantised to 4 bits (QLoRA; GPU + bitsandbytes).
    ``attn_implementation``: transformers' (``'sdpa'``, ``'eager'``, ``'flash_attention_2'`` on
    a CUDA host with flash-attn); None is transformers' default.
    """
    dtype = getattr(torch, torch_dtype)
    quant = quantization_config(load_in_4bit)
    if pretrained is not None:
        folder = _check_folder(pretrained, 'llm')
        extra = dict(quantization_config=quant, device_map={'': 0}) if quant else {}
        if attn_implementation:
            extra['attn_implementation'] = attn_implementation
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=dtype,
                                                     **extra)
        if quant:
            from peft import prepare_model_for_kbit_training
            model = prepare_model_for_kbit_training(model, gradient_checkpointing)
    elif config is not None:
        if quant:
            raise UserError('llm.load_in_4bit quantises pretrained weights: give llm.pretrained')
        config = dict(config)
        config.setdefault('vocab_size', len(tokenizer))
        hf_config = AutoConfig.for_model(config.pop('model_type', 'llama'), **config)
        extra = dict(attn_implementation=attn_implementation) if attn_implementation else {}
        model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype, **extra)
    else:
        raise UserError('llm: give `pretrained` (a local HF folder) or `config` (a dict)')
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.pad_token_id = tokenizer.pad_token_id
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


def decoder_and_head(llm: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The transformer body and the LM head, whether or not peft wraps the model."""
    base = llm.get_base_model() if hasattr(llm, 'get_base_model') else llm
    return base.get_decoder(), base.get_output_embeddings()
