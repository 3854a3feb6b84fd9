"""A Vicuna-7B-v1.1-layout folder (sentencepiece ``tokenizer.model``, no ``tokenizer.json``)
loads through ullava's tokenizer builder under transformers 5 (which converts the sentencepiece
model; it needs the sentencepiece and protobuf packages) and tokenises as sentencepiece does."""
import sentencepiece as spm

from ullava.models.language import build_tokenizer
from ullava.models.tokens import ADDED_TOKENS

from .stand_ins import CORPUS, VICUNA


def test_vicuna_folder_tokenises_as_its_sentencepiece_model(ckpt_dir):
    folder = ckpt_dir / VICUNA
    assert (folder / 'tokenizer.model').is_file() and not (folder / 'tokenizer.json').exists()
    sp = spm.SentencePieceProcessor(model_file=str(folder / 'tokenizer.model'))
    tok = build_tokenizer(str(folder))
    texts = CORPUS + ['Ünïcödé 猫 🙂 and a\nnew line', 'two  spaces, digits 2026']
    for text in texts:  # no special-token strings in these: both sides read them as text
        text = text.replace('[SEG]', 'SEG').replace('[LOC]', 'LOC').replace('[tag]', 'tag') \
            .replace('[/tag]', '/tag').replace('</s>', '')
        assert tok(text, add_special_tokens=False).input_ids == sp.encode(text), text
    assert tok('hi').input_ids[0] == sp.bos_id() == tok.bos_token_id == 1
    assert (tok.eos_token_id, tok.unk_token_id) == (sp.eos_id(), sp.unk_id()) == (2, 0)
    # ullava's tokens follow the base vocabulary in the reference's order ([PAD] first)
    added = tok.convert_tokens_to_ids(ADDED_TOKENS)
    assert added == list(range(sp.vocab_size(), sp.vocab_size() + len(ADDED_TOKENS)))
