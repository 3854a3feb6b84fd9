"""A small byte-level BPE tokenizer, trained in memory, for the tiny configs and the tests.

No tokenizer files ship with ullava and nothing may be downloaded, so the tiny model trains its
own: byte-level BPE (any text encodes, nothing maps to <unk>) over a fixed built-in corpus, so the
vocabulary -- and therefore every token id -- is the same on every machine.
"""
from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

_WORDS = """
a an the this that these those is are was were be it its there here what which who how many much
yes no not and or of in on at to from with left right above below top bottom middle center centre
red green blue yellow orange purple white black gray grey pink brown cyan magenta colour color
circle circles square squares triangle triangles star stars ring rings shape shapes object objects
small large big tiny medium moves moving move up down background striped stripes noise gradient
plain textured one two three four five six seven eight nine ten zero 0 1 2 3 4 5 6 7 8 9 10
image video picture photo frame clip describe description brief briefly caption segment segmentation
mask location locate find show output please can you could give me in this image the of
sure mask location tag category reason because stands out largest most saturated salient it is
question answer human assistant user system chat between curious artificial intelligence gives
helpful detailed and polite answers to human's questions what's where's which
"""

_SENTENCES = [
    'A chat between a curious human and an artificial intelligence assistant. The assistant gives '
    "helpful, detailed, and polite answers to the human's questions.",
    'USER: ASSISTANT: Human: Assistant: ###',
    'Sure. Mask: [SEG]; Location: [LOC]; [tag]circle[/tag].',
    'Can you segment and locate the red circle in this image?',
    'Output the segmentation mask of the blue square in the image.',
    'Give a brief description of the image.', 'Describe the video.',
    'What colour is the square? How many shapes are there? Is there a green triangle?',
    'Is the red circle left or right of the blue square?',
    'a red circle and a small blue square on a striped background',
    'a yellow triangle moves to the right', 'the shape left of the blue square',
]


def _corpus() -> list[str]:
    words = _WORDS.split()
    lines = list(_SENTENCES) * 20
    lines += [' '.join(words[i:i + 12]) for i in range(0, len(words), 6)] * 10
    return lines


def build_tiny_tokenizer(vocab_size: int = 768) -> PreTrainedTokenizerFast:
    """Train the tiny tokenizer (about 0.1 s); deterministic for a fixed corpus and size."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, show_progress=False,
        special_tokens=['<unk>', '<s>', '</s>'],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token='<s>', eos_token='</s>',
                                   unk_token='<unk>', name_or_path='ullava-tiny-bpe')
