"""What every head of the model is: a registered module that reads the LLM's hidden states at its
own tokens, computes its own loss terms and writes its own predictions on the data samples.

The model (``ULLaVA``) knows no task: it runs ``vision tower -> projector -> LLM`` and hands each
head a :class:`HeadBatch`; the head finds its tokens, supervises them with the targets it declares
(``target_fields``, which also tells the resize and pack transforms how those targets follow the
image) and writes its ``pred_fields``. ``projects/README.md`` shows how to add one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import nn

from ullava.structures import ULLaVADataSample, register_target_field
from ullava.utils import UserError

from .. import losses  # noqa: F401  (registers the loss modules the heads build)
from .prompts import check_prompt_state, prompt_positions


def dtype_of(module: nn.Module) -> torch.dtype:
    """The parameter dtype of a module (DeepSpeed bf16 or ``torch_dtype`` may differ from fp32)."""
    return next(module.parameters()).dtype


@dataclass
class HeadBatch:
    """What the model gives its heads for one batch.

    Attributes:
        inputs: the data preprocessor's batch (``sam_images``, ``sam_index``, ...).
        input_ids: [B,L] token ids (prompt + answer; generated answers in ``generate`` mode).
        hidden: [B,L,H] the LLM's last-layer hidden states.
        token_ids: token string -> id for every special token the model knows.
        data_preprocessor: the model's (normalisation constants, e.g. to de-normalise an image).
    """
    inputs: dict
    input_ids: torch.Tensor
    hidden: torch.Tensor
    token_ids: dict
    data_preprocessor: nn.Module

    def prompts(self, token: str, state: str = 'before'):
        """The hidden state prompting a head for every ``token`` (``state``: see
        ``prompts.PROMPT_STATES``), the batch index of its sample, and the count per sample."""
        where = prompt_positions(self.input_ids, self.token_ids[token], state)
        return self.hidden[where], where.nonzero()[:, 0], where.sum(1)

    def zero(self, module: nn.Module) -> torch.Tensor:
        """A zero that touches every trainable parameter of ``module`` (keeps DDP in step)."""
        return sum((p.sum() * 0 for p in module.parameters() if p.requires_grad),
                   torch.zeros((), device=self.hidden.device))


def targets_per_token(data_samples: Sequence[ULLaVADataSample], field: str, counts: torch.Tensor,
                      token: str, optional: bool = False) -> list[torch.Tensor]:
    """One target field of each sample with targets, checking one target per token.

    ``optional``: a sample whose answer has none of ``token`` is not supervised by ``field``
    even if it carries targets (semantic segmentation samples have boxes but no [LOC]).
    """
    items = []
    for i, ds in enumerate(data_samples):
        target = ds.get(field)
        n = 0 if target is None else len(target)
        if optional and int(counts[i]) == 0:
            continue
        if n != int(counts[i]):
            raise UserError(f'sample {ds.metainfo.get("img_path", i)}: the answer has '
                            f'{int(counts[i])} {token} tokens but {n} targets in {field}')
        if n:
            items.append(target)
    return items


class BaseHead(nn.Module):
    """A head of the model.

    Subclasses set the class attributes and override :meth:`loss` and :meth:`predict`.

    Class attributes:
        target_fields: target field -> kind (``ullava.structures.targets``), declared on class
            creation so the data pipeline resizes and packs them.
        pred_fields: the fields :meth:`predict` writes on each data sample (what it exports).

    Args:
        tokens: the special tokens whose states prompt this head, added to the tokenizer.
        prompt_state: which state prompts it: ``'before'`` (the reference's) or ``'token'``.
    """

    target_fields: ClassVar[dict[str, str]] = {}
    pred_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name, kind in cls.target_fields.items():
            register_target_field(name, kind)

    def __init__(self, tokens: Sequence[str] = (), prompt_state: str = 'before') -> None:
        super().__init__()
        self.tokens = tuple(tokens)
        self.prompt_state = check_prompt_state(prompt_state)

    @property
    def token(self) -> str:
        """The head's one token (heads with several override what they need)."""
        return self.tokens[0]

    def loss(self, batch: HeadBatch, data_samples: Sequence[ULLaVADataSample]) -> dict:
        """Loss terms (``loss_*`` keys, already weighted); none by default."""
        return {}

    def predict(self, batch: HeadBatch, data_samples: Sequence[ULLaVADataSample]) -> None:
        """Write ``pred_fields`` on each data sample: one output per token in its answer."""

    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters kept for the checkpoint layout that no path uses (frozen by the model)."""
        return []
