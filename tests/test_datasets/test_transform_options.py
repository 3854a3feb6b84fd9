"""Named options of the shared transforms: the reference's behaviour by default, the demo's on
request (TokenizeConversation.visual_last, ResizeForCLIP.keys)."""
import numpy as np
import pytest

from ullava.datasets.conversation import visual_input_last
from ullava.datasets.transforms import ResizeForCLIP, TokenizeConversation
from ullava.models.language import build_tokenizer
from ullava.models.tokens import IGNORE_INDEX, IMAGE_PATCH
from ullava.utils import UserError


@pytest.mark.parametrize('message, expected', [
    ('<image>\nWhat colour is the star?', 'What colour is the star?\n<image>'),
    ('Give a brief description of the image.\n<image>', 'Give a brief description of the image.\n<image>'),
    ('<video>\nDescribe the video.', 'Describe the video.\n<video>'),
    ('Is the star left of the <image> circle?', 'Is the star left of the  circle?\n<image>'),
    ('How many shapes are there?', 'How many shapes are there?'),
])
def test_visual_input_moves_after_the_words(message, expected):
    assert visual_input_last(message) == expected


def _tokenize(visual_last):
    conv = [{'from': 'human', 'value': '<image>\nWhat colour is the star?'},
            {'from': 'gpt', 'value': 'red'},
            {'from': 'human', 'value': 'Is there a circle?'},
            {'from': 'gpt', 'value': 'no'}]
    t = TokenizeConversation(tokenizer=dict(tiny=True), image_token_len=4, visual_last=visual_last)
    return t.transform(dict(conversations=conv))


def test_visual_last_keeps_the_answers_and_puts_the_question_before_the_image():
    tok = build_tokenizer(tiny=True)
    patch = tok.convert_tokens_to_ids(IMAGE_PATCH)
    first, last = _tokenize(False), _tokenize(True)
    # the same tokens, in another order within the first prompt: the supervision is unchanged
    assert sorted(first['input_ids']) == sorted(last['input_ids'])
    answers = [[i for i, lab in zip(r['input_ids'], r['labels']) if lab != IGNORE_INDEX]
               for r in (first, last)]
    assert answers[0] == answers[1]
    assert first['prompt_len'] == last['prompt_len']
    star = tok(' star', add_special_tokens=False)['input_ids'][0]  # byte-level BPE: ' star'

    def where(ids, token):
        return ids.index(token)

    assert where(first['input_ids'], patch) < where(first['input_ids'], star)
    assert where(last['input_ids'], patch) > where(last['input_ids'], star)


def test_resize_for_clip_views_only_the_named_inputs():
    img = np.zeros((20, 30, 3), np.uint8)
    frames = np.zeros((2, 20, 30, 3), np.uint8)
    both = ResizeForCLIP(size=16).transform(dict(img=img, frames=frames))
    assert both['clip_img'].shape == (3, 16, 16) and both['clip_frames'].shape == (2, 3, 16, 16)
    only = ResizeForCLIP(size=16, keys=('frames',)).transform(dict(img=img, frames=frames))
    assert 'clip_img' not in only and only['clip_frames'].shape == (2, 3, 16, 16)
    with pytest.raises(UserError, match='ResizeForCLIP.keys'):
        ResizeForCLIP(size=16, keys=('image',))
