"""Conversation templates (as u-LLaVA formats them) and tokenisation with label masking.

``conv_simple`` (stage I): no system text, roles Human/Assistant, separator ``###``:
    ``###Human: <q>###Assistant: <a>###``
``conv_sep2`` (stage II, Vicuna v1.1): a system sentence, roles USER/ASSISTANT, ``sep=' '``,
``sep2='</s>'``: ``<system> USER: <q> ASSISTANT: <a></s>USER: ...``

Only the assistant's words (and the separator that ends them) are supervised; the tokenizer's
EOS closes every assistant turn so that generation stops there for both templates (``sep2`` *is*
EOS for Vicuna; for ``conv_simple`` it follows ``###``).
"""
from __future__ import annotations

from dataclasses import dataclass

from ullava.models.tokens import IGNORE_INDEX, IMAGE, VIDEO, expand_visual_placeholders
from ullava.utils import UserError

VICUNA_SYSTEM = ('A chat between a curious human and an artificial intelligence assistant. '
                 "The assistant gives helpful, detailed, and polite answers to the human's questions.")


@dataclass(frozen=True)
class ConversationTemplate:
    name: str
    system: str
    roles: tuple[str, str]
    sep: str
    sep2: str | None = None  # None: one separator after every turn

    def segments(self, turns: list[tuple[int, str]]) -> list[tuple[str, bool]]:
        """Split a conversation into (text, is_answer) pieces; ``turns`` = (role 0|1, message).

        Answer pieces carry the assistant's message and the separator that follows it; the role
        name stays with the prompt so a prompt for generation ends with ``'ASSISTANT:'``.
        """
        out = [(self.system + self.sep, False)]
        for i, (role, message) in enumerate(turns):
            end = self.sep if self.sep2 is None or role == 0 else ''
            if role == 0:
                out.append((f'{self.roles[0]}: {message}{end}', False))
            else:
                out.append((f'{self.roles[1]}:', False))
                out.append((f' {message}{end}', True))
        return out


TEMPLATES = {
    'conv_simple': ConversationTemplate('conv_simple', '', ('Human', 'Assistant'), '###'),
    'conv_sep2': ConversationTemplate('conv_sep2', VICUNA_SYSTEM, ('USER', 'ASSISTANT'), ' ', '</s>'),
}

_ROLE = {'human': 0, 'user': 0, 'gpt': 1, 'assistant': 1}


def parse_turns(conversations: list[dict], source: str = '') -> list[tuple[int, str]]:
    """LLaVA's ``[{'from': 'human'|'gpt', 'value': ...}]`` -> [(role, text)], validated."""
    turns = []
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or 'from' not in turn or 'value' not in turn:
            raise UserError(f'{source}: conversations[{i}] must be a dict with "from" and "value"')
        role = _ROLE.get(str(turn['from']).lower())
        if role is None:
            raise UserError(f'{source}: conversations[{i}].from is {turn["from"]!r}; '
                            f'expected one of {sorted(_ROLE)}')
        turns.append((role, str(turn['value'])))
    if not turns or turns[-1][0] != 1:
        raise UserError(f'{source}: a conversation must end with an assistant ("gpt") turn')
    return turns


def visual_input_last(message: str) -> str:
    """A human turn with its ``<image>`` / ``<video>`` placeholders moved after its words:
    ``'<image>\nWhat colour is the star?'`` -> ``'What colour is the star?\n<image>'``.

    In a causal LLM the visual tokens placed before the question cannot read it: every
    question-dependent step (find the star, compare two shapes) then falls to the few layers
    between the question and the answer. Placed after it, each visual token attends to the
    question too. The reference has both orders among its templates ("Give a brief description
    of the image.\n<image>"); ``TokenizeConversation(visual_last=True)`` applies the second to
    every turn (the tiny demo LLM's option, docs/benchmarks.md).
    """
    found = [tag for tag in (IMAGE, VIDEO) for _ in range(message.count(tag))]
    if not found:
        return message
    for tag in (IMAGE, VIDEO):
        message = remove_placeholder(message, tag)
    return message.strip() + '\n' + ''.join(found)


def remove_placeholder(message: str, tag: str = IMAGE) -> str:
    """``message`` without ``tag`` and the newline that joins it to the words."""
    return message.replace(tag + '\n', '').replace('\n' + tag, '').replace(tag, '')


def tokenize_conversation(tokenizer, template: str, turns: list[tuple[int, str]],
                          image_tokens: int, video_tokens: int,
                          max_length: int | None = None) -> dict:
    """Token ids, labels (IGNORE_INDEX outside answers) and the length of the last prompt.

    ``prompt_len`` is where the last answer starts: the model generates from there, or reads the
    given answer in one pass (the reference's evaluation protocol).
    """
    if template not in TEMPLATES:
        raise UserError(f'unknown conversation template {template!r}; choose from {sorted(TEMPLATES)}')
    ids: list[int] = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    prompt_len = 0
    for text, is_answer in TEMPLATES[template].segments(turns):
        text = text.replace('</s>', '')  # sep2 is EOS: appended as a token below
        text = expand_visual_placeholders(text, image_tokens, video_tokens)
        piece = tokenizer(text, add_special_tokens=False)['input_ids'] if text else []
        if is_answer:
            prompt_len = len(ids)
            piece = piece + [tokenizer.eos_token_id]
        ids += piece
        labels += piece if is_answer else [IGNORE_INDEX] * len(piece)
    if max_length is not None and len(ids) > max_length:
        if prompt_len >= max_length:
            raise UserError(f'the prompt is {prompt_len} tokens, longer than max_length={max_length} '
                            f'(visual tokens cannot be cut)')
        ids, labels = ids[:max_length], labels[:max_length]
    return dict(input_ids=ids, labels=labels, prompt_len=prompt_len)
