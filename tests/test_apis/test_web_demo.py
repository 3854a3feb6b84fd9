"""The chat web demo (ullava/apis/web.py) on the tiny demo config with random weights.

Most tests use the config biased to answer exactly ``[SEG]`` (tests/test_apis/seg_config.py), so
every answer brings a mask and an overlay. The browser test is in test_web_browser.py.
"""
import json
import re
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_apis.seg_config import DEMO_CFG, write_seg_config  # tests/ is on sys.path

WARN = '\N{WARNING SIGN} '


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Two images, a clip, and the bad uploads of the old form's tests."""
    tmp = tmp_path_factory.mktemp('web')
    rng = np.random.RandomState(0)
    Image.fromarray((rng.rand(64, 96, 3) * 255).astype(np.uint8)).save(tmp / 'shapes.png')
    Image.fromarray((rng.rand(300, 200, 3) * 255).astype(np.uint8)).save(tmp / 'big.png')
    frames = [Image.fromarray((rng.rand(40, 40, 3) * 255).astype(np.uint8)) for _ in range(3)]
    frames[0].save(tmp / 'clip.gif', save_all=True, append_images=frames[1:])
    (tmp / 'notes.txt').write_text('this is not an image')
    (tmp / 'clip.mp4').write_bytes(b'\x00' * 64)
    (tmp / 'empty.png').write_bytes(b'')
    return tmp


@pytest.fixture(scope='module')
def inferencer(tmp_path_factory):
    from ullava.apis.infer import load_inferencer
    cfg = write_seg_config(tmp_path_factory.mktemp('cfg') / 'seg_cfg.py')
    return load_inferencer(str(cfg), 'none', device='cpu')


@pytest.fixture(scope='module')
def plain():
    """The demo config as it is (random weights say random words), 16 new tokens exactly."""
    from ullava.apis.infer import load_inferencer
    plain = load_inferencer(str(DEMO_CFG), 'none', device='cpu')
    plain.model.generation.update(max_new_tokens=16, min_new_tokens=16)  # no early end-of-text
    return plain


@pytest.fixture()
def chat(inferencer, tmp_path):
    from ullava.apis.web import ChatDemo
    return ChatDemo(inferencer, max_pixels=200 * 200, workdir=str(tmp_path))


def ask(chat, session, text='', upload=None):
    """Run one message to the end; returns the updates' count."""
    return sum(1 for _ in chat.respond(session, text, None if upload is None else str(upload)))


def read_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert('RGB'))


def test_second_turn_is_about_the_first_image(chat, files):
    from ullava.apis.web import ChatSession
    session = ChatSession()
    ask(chat, session, 'Segment the red circle.', files / 'shapes.png')
    ask(chat, session, 'Now segment the blue square.')  # no upload: the image is kept
    assert session.turns == [('Segment the red circle.', '[SEG]'),
                             ('Now segment the blue square.', '[SEG]')]
    shown = [(m['role'], m['content'] if isinstance(m['content'], str) else 'file')
             for m in session.messages]
    assert shown == [('user', 'file'), ('user', 'Segment the red circle.'), ('assistant', '[SEG]'),
                     ('assistant', 'file'),
                     ('user', 'Now segment the blue square.'), ('assistant', '[SEG]'),
                     ('assistant', 'file')]
    original = read_rgb(files / 'shapes.png')
    first, second = (read_rgb(session.messages[i]['content']['path']) for i in (3, 6))
    for overlay in (first, second):  # drawn on the uploaded image: a mask tints some pixels
        assert overlay.shape == original.shape
        changed = (overlay != original).any(-1)
        assert 0 < changed.mean() < 1
    assert session.picture == session.messages[6]['content']['path']


def test_history_goes_to_the_model_with_the_image_in_the_first_turn(inferencer, files, monkeypatch):
    from ullava.apis.infer import read_image_file
    from ullava.apis.web import chat_predict
    seen = []
    pipeline = inferencer.pipeline
    monkeypatch.setattr(inferencer, 'pipeline', lambda r: seen.append(r['conversations'])
                        or pipeline(r))
    image = read_image_file(files / 'shapes.png')
    turns = [('Segment the circle.', '[SEG]'), ('And the <image> star?', None)]
    result = chat_predict(inferencer, turns, image=image)
    assert seen[0] == [{'from': 'human', 'value': '<image>\nSegment the circle.'},
                       {'from': 'gpt', 'value': '[SEG]'},
                       {'from': 'human', 'value': 'And the star?'},  # placeholders typed: dropped
                       {'from': 'gpt', 'value': ''}]
    # the input holds two [SEG] (the earlier answer's and the new one): only the new one's mask
    assert result['text'] == '[SEG]'
    assert result['masks'].shape == (1, 64, 96) and result['boxes'].shape == (1, 4)


def test_max_turns_bounds_the_history(inferencer, files, tmp_path, monkeypatch):
    from ullava.apis.web import ChatDemo, ChatSession
    chat = ChatDemo(inferencer, max_turns=1, workdir=str(tmp_path))
    seen = []
    pipeline = inferencer.pipeline
    monkeypatch.setattr(inferencer, 'pipeline', lambda r: seen.append(r['conversations'])
                        or pipeline(r))
    session = ChatSession()
    for i, upload in enumerate([files / 'shapes.png', None, None]):
        ask(chat, session, f'Question {i}.', upload)
    assert [t['value'] for t in seen[-1]] == ['<image>\nQuestion 1.', '[SEG]', 'Question 2.', '']
    assert len(session.turns) == 3  # all are kept (and shown); the model sees the last one


def test_answer_streams_word_by_word(plain, files):
    """Random weights without the bias say several words; the stream grows to the answer."""
    from ullava.apis.infer import read_image_file
    from ullava.apis.web import chat_predict, stream_answer
    turns = [('Describe the image.', None)]
    image = read_image_file(files / 'shapes.png')
    updates = list(stream_answer(plain, turns, image=image))
    texts = [text for text, _ in updates]
    assert len(texts) >= 3, texts
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:])), texts
    assert [r is None for _, r in updates] == [True] * (len(updates) - 1) + [False]
    final = updates[-1][1]
    assert texts[-1] == final['text'] == chat_predict(plain, turns, image=image)['text']


def test_closed_stream_stops_generating(plain, monkeypatch):
    """A page that goes away mid-answer: generation stops within a token or two (of 200), its
    thread has ended, and the model's generation settings are as before."""
    import threading

    from transformers import TextIteratorStreamer

    from ullava.apis.web import stream_answer
    tokens, put = [], TextIteratorStreamer.put
    monkeypatch.setattr(TextIteratorStreamer, 'put',
                        lambda self, value: tokens.append(value) or put(self, value))
    generation = dict(plain.model.generation)
    plain.model.generation.update(max_new_tokens=200, min_new_tokens=200)  # no early end-of-text
    try:
        stream = stream_answer(plain, [('Tell me a long story.', None)])
        next(stream)
        stream.close()
    finally:
        plain.model.generation.clear()
        plain.model.generation.update(generation)
    assert not [t for t in threading.enumerate() if t.name == 'ullava-generate']
    assert 2 <= len(tokens) < 20, len(tokens)  # the prompt, then a few new tokens


@pytest.mark.parametrize('text, upload, message', [
    ('  ', 'shapes.png', 'Please type a prompt: it is empty.'),
    ('hi', 'notes.txt', 'notes.txt is not a readable image'),
    ('hi', 'big.png', 'big.png is 200x300 = 60,000 pixels; the limit is 40,000'),
    ('hi', 'clip.mp4', 'clip.mp4 has no frames'),
    ('hi', 'empty.png', 'empty.png is empty.'),
])
def test_bad_input_is_answered_in_the_chat(chat, files, text, upload, message):
    from ullava.apis.web import ChatSession
    session = ChatSession()
    assert ask(chat, session, text, files / upload) == 1
    assert session.messages[-1]['role'] == 'assistant'
    assert session.messages[-1]['content'].startswith(WARN + message), session.messages[-1]
    assert session.turns == []
    ask(chat, session, 'Segment it.', files / 'shapes.png')  # and the chat goes on
    assert session.turns == [('Segment it.', '[SEG]')]


def test_bad_upload_keeps_the_earlier_image(chat, files):
    from ullava.apis.web import ChatSession
    session = ChatSession()
    ask(chat, session, 'Segment it.', files / 'shapes.png')
    ask(chat, session, 'And this?', files / 'notes.txt')
    assert 'notes.txt is not a readable image' in session.messages[-1]['content']
    ask(chat, session, 'Segment it again.')
    assert session.name == 'shapes.png' and len(session.turns) == 2
    assert read_rgb(session.picture).shape == (64, 96, 3)


def test_clip_is_kept_and_a_new_upload_starts_over(chat, files):
    from ullava.apis.web import ChatSession
    session = ChatSession()
    ask(chat, session, 'Describe the video.', files / 'clip.gif')
    assert session.video and session.image is None
    assert read_rgb(session.picture).shape == (40, 40, 3)  # the first frame, beside the chat
    # a [SEG] needs an image for SAM: a clip's answer has no mask, so no overlay message
    assert session.messages[-1] == {'role': 'assistant', 'content': '[SEG]'}
    ask(chat, session, 'What moves?')
    assert len(session.turns) == 2
    ask(chat, session, 'Segment it.', files / 'shapes.png')
    assert session.video is None and session.turns == [('Segment it.', '[SEG]')]
    shown = [m['content']['path'] for m in session.messages if isinstance(m['content'], dict)]
    assert len(shown) == 3 and all(Path(p).is_file() for p in shown)  # the earlier ones too
    session.close()
    assert not any(Path(p).exists() for p in shown)


def test_text_only_question(chat):
    from ullava.apis.web import ChatSession
    session = ChatSession()
    ask(chat, session, 'Hello?')
    assert session.turns == [('Hello?', '[SEG]')] and session.picture is None
    assert session.messages[-1] == {'role': 'assistant', 'content': '[SEG]'}


def test_examples_come_from_the_demo_world(tmp_path):
    from ullava.apis.web import demo_examples
    examples = demo_examples(tmp_path)
    assert len(examples) == 5
    for example in examples:
        assert '<image>' not in example['text'] and '<video>' not in example['text']
        assert len(example['files']) == 1 and Path(example['files'][0]).is_file()
    ref = json.loads((tmp_path / 'val/refcoco_val.json').read_text())[0]
    assert examples[0] == dict(text=f'Output the segmentation mask of {ref["sentences"][0]} in '
                                    f'the image.', files=[str(tmp_path / ref['image_path'])])
    assert examples[-1]['text'] == 'Describe the video.'
    assert examples[-1]['files'][0].endswith('.gif')


# ---------------------------------------------------------------------------- served
@pytest.fixture(scope='module')
def served(inferencer, tmp_path_factory):
    """The app on a free local port, in this process; yields its URL."""
    from ullava.apis.web import ChatDemo, build_app, demo_examples, launch
    work = tmp_path_factory.mktemp('served')
    app = build_app(ChatDemo(inferencer, workdir=str(work)), demo_examples(work / 'examples'))
    url = launch(app, port=0)
    yield url
    app.close()


def _answer_texts(messages) -> list[str]:
    return [c['text'] for m in messages if m['role'] == 'assistant' for c in m['content']
            if c['type'] == 'text']


def test_api_with_gradio_client(served, files):
    from gradio_client import Client, handle_file
    client = Client(served, verbose=False)
    assert '/chat' in client.view_api(print_info=False, return_format='dict')['named_endpoints']
    messages, overlay = client.predict(
        {'text': 'Segment the red circle.', 'files': [handle_file(str(files / 'shapes.png'))]},
        api_name='/chat')
    assert _answer_texts(messages) == ['[SEG]']
    original = read_rgb(files / 'shapes.png')
    first = read_rgb(overlay)
    assert first.shape == original.shape and (first != original).any()
    # the client keeps its session: the second question is about the same image
    job = client.submit({'text': 'And now?', 'files': []}, api_name='/chat')
    updates = list(job)
    messages, overlay = job.result()
    assert _answer_texts(messages) == ['[SEG]', '[SEG]']
    assert read_rgb(overlay).shape == original.shape
    assert len(updates) >= 3  # streamed: the empty answer, the text, then the overlay
    client.predict(api_name='/new_chat')  # forgets the image
    messages, overlay = client.predict({'text': 'And now?', 'files': []}, api_name='/chat')
    assert _answer_texts(messages) == ['[SEG]'] and overlay is None


class _Assets(HTMLParser):
    """URLs the browser loads by itself: scripts, stylesheets, icons, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ('script', 'img', 'iframe', 'source') and attrs.get('src'):
            self.urls.append(attrs['src'])
        if tag == 'link' and attrs.get('href'):
            self.urls.append(attrs['href'])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode('utf-8', 'replace')


def test_page_loads_nothing_from_other_hosts(served):
    parser = _Assets()
    parser.feed(_get(served))
    assert parser.urls, 'no assets found: the page layout changed'
    external = [u for u in parser.urls if re.match(r'(https?:)?//', u) and not u.startswith(served)]
    assert external == []
    config = json.loads(_get(served + 'config'))
    assert config['stylesheets'] == [] and not config['analytics_enabled']
    css = [_get(served + 'theme.css')] + [_get(served + u.removeprefix('./')) for u in parser.urls
                                          if u.endswith('.css')]
    imported = re.findall(r'@import\s+(?:url\()?["\']?([^"\')\s;]+)', '\n'.join(css))
    linked = re.findall(r'url\(\s*["\']?((?:https?:)?//[^"\')]+)', '\n'.join(css))
    assert [u for u in imported + linked if not u.startswith(served)] == []
    assert 'googleapis' not in '\n'.join(css)
