"""The web demo: a gradio chat about an image or a clip (``tools/web_demo.py``).

Attach an image (or a clip) once and ask several questions about it: the conversation so far goes
to the model with each new question (the image is shown in the first one, as LLaVA / u-LLaVA train
multi-turn samples), the answer streams in word by word, and its masks and boxes are drawn on the
image. Requests wait in gradio's queue and run one at a time (the model is shared).

The same handler is the HTTP API ``/chat``; a ``gradio_client.Client`` keeps its session, so a
second call can ask about the image of the first one::

    from gradio_client import Client, handle_file
    client = Client('http://127.0.0.1:7860/')
    messages, overlay_png = client.predict(
        {'text': 'Segment the red circle.', 'files': [handle_file('shapes.png')]}, api_name='/chat')

Offline: the theme uses system fonts (no web-font download) and gradio's usage analytics and
version check are switched off; every asset comes from the server itself.

Bad input (not an image, an empty prompt, a huge image, a clip without frames) is answered in the
chat and the server keeps serving; uploads above ``MAX_UPLOAD_BYTES`` are refused by gradio.
"""
from __future__ import annotations

import io
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import traceback
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from ullava.datasets.collate import ullava_collate
from ullava.models.tokens import IMAGE, LOC, SEG, VIDEO
from ullava.utils import UserError
from ullava.visualization import save_png

from .infer import MAX_PIXELS, decode_image, draw, read_first_frame

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_TURNS = 8  # earlier turns are dropped from what the model sees (the chat keeps showing them)
VIDEO_SUFFIXES = {'.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg'}
PLACEHOLDERS = re.compile(rf'\s*(?:{re.escape(IMAGE)}|{re.escape(VIDEO)})\s*')
SYSTEM_FONTS = ['ui-sans-serif', 'system-ui', 'sans-serif']
SYSTEM_MONO_FONTS = ['ui-monospace', 'Consolas', 'monospace']
# small images (the demo world's are 64x64) are shown enlarged: keep their pixels sharp
CSS = '#picture img, #chat img { image-rendering: pixelated; }'
logger = logging.getLogger('ullava.web')


# ---------------------------------------------------------------------------- the model's side
def chat_predict(inferencer, turns: Sequence[tuple[str, str | None]],
                 image: np.ndarray | None = None, video: str | os.PathLike | None = None,
                 generate_kwargs: dict | None = None) -> dict:
    """Answer the last question of a conversation ``[(question, answer), ..., (question, None)]``.

    Returns ``dict(text, masks [k,H,W] bool, boxes [n,4] xyxy pixels)`` of the LAST answer only:
    the model also predicts a mask for every ``[SEG]`` of the earlier answers (they are in its
    input), and those are cut off here. ``generate_kwargs`` go to the LLM's ``generate`` with the
    model's own (a ``streamer``, ``stopping_criteria``).

    Written here because :class:`ULLaVAInferencer` asks one question at a time; its
    ``prepare`` / ``batch`` are followed step by step, with the earlier turns in the conversation.
    """
    results: dict[str, Any] = dict(task='infer', record_idx=0, ann_file='<chat>')
    if image is not None:
        results.update(img=image.astype(np.uint8), ori_shape=image.shape[:2])
    if video is not None:
        results['video_path'] = str(video)
    tag = f'{VIDEO}\n' if video is not None else f'{IMAGE}\n' if image is not None else ''
    conversations = []
    for i, (question, answer) in enumerate(turns):
        # typed placeholders would ask for images the request does not have
        question = PLACEHOLDERS.sub(' ', question).strip()
        conversations += [{'from': 'human', 'value': (tag if i == 0 else '') + question},
                          {'from': 'gpt', 'value': answer or ''}]
    results['conversations'] = conversations
    packed = inferencer.pipeline(results)
    model = inferencer.model
    data = model.data_preprocessor(ullava_collate([packed]), False)
    saved = model.predict_protocol, model.generation
    model.predict_protocol = 'generate'
    if generate_kwargs:  # ULLaVA.generate passes model.generation on to llm.generate
        model.generation = {**saved[1], **generate_kwargs}
    try:
        with torch.no_grad():
            sample = model(**data, mode='predict')[0]
    finally:
        model.predict_protocol, model.generation = saved

    # one mask per [SEG] and one box per [LOC] of the whole input (boxes read off the masks
    # where it has no [LOC]; no mask where there is no image), the earlier answers' first
    prompt = packed['inputs']['input_ids'][:packed['inputs']['prompt_len']]
    before = {t: int((prompt == model.token_ids[t]).sum()) for t in (SEG, LOC)}
    box_token = LOC if before[LOC] + sample.pred_text.count(LOC) else SEG
    h, w = image.shape[:2] if image is not None else (0, 0)
    masks = sample.get('pred_masks', torch.zeros(0, h, w, dtype=torch.bool)).cpu().numpy()
    boxes = sample.get('pred_boxes', torch.zeros(0, 4)).cpu().numpy()
    return dict(text=sample.pred_text, masks=masks[before[SEG]:], boxes=boxes[before[box_token]:])


def stream_answer(inferencer, turns: Sequence[tuple[str, str | None]],
                  image: np.ndarray | None = None, video: str | os.PathLike | None = None
                  ) -> Iterator[tuple[str, dict | None]]:
    """:func:`chat_predict` in a thread; yields ``(text so far, None)`` while the answer is
    generated, then ``(final text, result)``.

    Closing the generator early (the page went away) stops the generation at the next token and
    waits for the thread: the model is never left working for nobody while the queue moves on.
    """
    tokenizer = inferencer.model.tokenizer
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=False)
    cancel = _Cancel()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome['result'] = chat_predict(
                inferencer, turns, image, video,
                dict(streamer=streamer, stopping_criteria=StoppingCriteriaList([cancel])))
        except BaseException as err:  # re-raised below, in the caller's thread
            outcome['error'] = err
            streamer.end()  # generate may not have ended the stream: unblock the reader

    thread = threading.Thread(target=work, name='ullava-generate', daemon=True)
    thread.start()
    text = ''
    try:
        for piece in streamer:
            text += piece
            yield text.replace(tokenizer.eos_token or '\0', '').strip(), None
    finally:
        cancel.event.set()
        thread.join()
    if 'error' in outcome:
        raise outcome['error']
    yield outcome['result']['text'], outcome['result']


class _Cancel(StoppingCriteria):
    """A stopping criterion of ``generate`` that ends every sequence once ``event`` is set."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool,
                          device=input_ids.device)


# ---------------------------------------------------------------------------- the chat
@dataclass
class ChatSession:
    """One browser tab's conversation (a ``gr.State``): the kept image or clip and the turns."""

    name: str = ''
    image: np.ndarray | None = None  # None for a clip (and before any upload)
    video: str | None = None
    canvas: np.ndarray | None = None  # what overlays are drawn on: the image, a clip's 1st frame
    picture: str | None = None  # the file shown beside the chat
    turns: list[tuple[str, str]] = field(default_factory=list)  # since the last upload
    messages: list[dict] = field(default_factory=list)  # what the Chatbot shows (all of them)
    # this session's folder: its uploads and overlays, which the chat shows until the session
    # ends (gradio's own cache is emptied by age, a long chat would lose its pictures)
    files: str | None = None

    def new_file(self, name: str, root: str | None = None) -> str:
        """A fresh path ending in ``name`` in the session's folder (made in ``root``)."""
        if self.files is None:
            self.files = tempfile.mkdtemp(prefix='session-', dir=root)
        return os.path.join(self.files, f'{uuid.uuid4().hex[:8]}-{name}')

    def save(self, array: np.ndarray, root: str | None = None) -> str:
        """``array`` as a PNG in the session's folder; its path."""
        path = self.new_file('overlay.png', root)
        save_png(path, array)
        return path

    def close(self) -> None:
        """Remove the session's files (gradio calls this when the tab is closed)."""
        if self.files is not None:
            shutil.rmtree(self.files, ignore_errors=True)
            self.files = None


def is_clip(filename: str, data: bytes) -> bool:
    """Video files by suffix; a GIF is a clip when it has more than one frame."""
    suffix = Path(filename).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix == '.gif' or data[:6] in (b'GIF87a', b'GIF89a'):
        try:
            with Image.open(io.BytesIO(data)) as im:
                return getattr(im, 'n_frames', 1) > 1
        except Exception:  # not a GIF after all: decode_image reports it
            return False
    return False


def shows_something(result: dict) -> bool:
    """Whether an overlay of ``result`` would differ from the bare image: a mask with pixels or a
    box with an area (a [SEG] about a clip, which has no image for SAM, has neither)."""
    boxes = result['boxes']
    return bool(result['masks'].any() or ((boxes[:, 2] > boxes[:, 0])
                                          & (boxes[:, 3] > boxes[:, 1])).any())


class ChatDemo:
    """The chat's logic, without gradio: attach an upload, answer a message.

    Args:
        inferencer: a loaded :class:`ULLaVAInferencer`; gradio's queue calls one answer at a time.
        max_pixels: larger images (or clip frames) are refused with a message.
        max_turns: how many earlier turns the model sees with a new question.
        workdir: where sessions keep their uploads and overlays (default: the system's temp
            folder).
    """

    def __init__(self, inferencer, max_pixels: int = MAX_PIXELS, max_turns: int = MAX_TURNS,
                 workdir: str | None = None) -> None:
        if max_turns < 0:
            raise UserError(f'max_turns must be 0 or more, got {max_turns}')
        self.inferencer = inferencer
        self.max_pixels = max_pixels
        self.max_turns = max_turns
        self.workdir = workdir

    def attach(self, session: ChatSession, path: str | os.PathLike) -> str:
        """Make the upload at ``path`` the session's image or clip (a new conversation); returns
        the session's copy of it."""
        path, name = Path(path), Path(path).name
        if not path.is_file():
            raise UserError(f'{name} did not arrive: attach it again.')
        if path.stat().st_size == 0:
            raise UserError(f'{name} is empty.')
        video_file = path.suffix.lower() in VIDEO_SUFFIXES  # read by OpenCV from its file
        data = b'' if video_file else path.read_bytes()
        clip = video_file or is_clip(name, data)
        if clip:
            canvas, image = read_first_frame(path, name, self.max_pixels), None
        else:
            canvas = image = decode_image(data, name, self.max_pixels)
        kept = session.new_file(name, self.workdir)
        shutil.copyfile(path, kept)
        session.name, session.image, session.canvas = name, image, canvas
        session.video = kept if clip else None
        session.turns = []
        session.picture = session.save(canvas, self.workdir) if clip else kept
        return kept

    def respond(self, session: ChatSession, text: str = '',
                upload: str | os.PathLike | None = None) -> Iterator[ChatSession]:
        """Answer one message, appending to ``session.messages``; yields the session after each
        change (the answer grows while it is generated, then its overlay follows)."""
        text = (text or '').strip()
        say = session.messages.append
        if upload:
            try:
                kept = self.attach(session, upload)
            except UserError as err:
                say(dict(role='user', content=f'\N{PAPERCLIP} {Path(upload).name} {text}'.strip()))
                say(dict(role='assistant', content=f'\N{WARNING SIGN} {err}'))
                yield session
                return
            say(dict(role='user', content=dict(path=kept)))
        if not text:
            say(dict(role='assistant',
                     content='\N{WARNING SIGN} Please type a prompt: it is empty.'))
            yield session
            return
        say(dict(role='user', content=text))
        answer = dict(role='assistant', content='')
        say(answer)
        yield session
        turns = (session.turns[-self.max_turns:] if self.max_turns else []) + [(text, None)]
        try:
            # closing(): when gradio drops this generator, the stream (and generation) stops too
            with closing(stream_answer(self.inferencer, turns, session.image,
                                       session.video)) as stream:
                for partial, result in stream:
                    answer['content'] = partial
                    yield session
        except UserError as err:
            answer['content'] = f'\N{WARNING SIGN} {err}'
        except torch.cuda.OutOfMemoryError:  # this input was too large; the next may fit
            torch.cuda.empty_cache()
            answer['content'] = '\N{WARNING SIGN} out of GPU memory on this request'
        except Exception as err:  # a bug must not take the server down: report it, keep serving
            logger.error('request failed:\n%s', traceback.format_exc())
            answer['content'] = (f'\N{WARNING SIGN} Internal error ({type(err).__name__}: {err}); '
                                 f'the server log has the details.')
        else:
            session.turns.append((text, result['text']))
            if session.canvas is not None and shows_something(result):
                session.picture = session.save(draw(session.canvas, result), self.workdir)
                say(dict(role='assistant', content=dict(path=session.picture)))
        yield session


# ---------------------------------------------------------------------------- examples
def demo_examples(folder: str | os.PathLike, seed: int = 0) -> list[dict]:
    """Chat examples from the demo world's held-out split: one per task, asked with the task's
    test template (as ``make demo`` evaluates). Writes a four-image world into ``folder``."""
    import json

    from ullava.demo import generate_world
    from ullava.demo.writers import VIDEO_PROMPT
    from ullava.tasks.templates import load_templates
    from ullava.tasks.caption.dataset import TEMPLATES as CAPTION
    from ullava.tasks.res.dataset import TEMPLATES as RES
    from ullava.tasks.salient.dataset import TEMPLATES as SALIENT
    from ullava.tasks.vqa.dataset import TEMPLATES as VQA
    folder = Path(folder)
    generate_world(folder, split='val', num_images=4, num_videos=1, seed=seed)

    def read(name: str) -> list:
        return json.loads((folder / 'val' / name).read_text())

    def example(template: str, file: str, *args) -> dict:
        text = PLACEHOLDERS.sub(' ', template.format(*args)).strip()
        return dict(text=text, files=[str(folder / file)])

    def on_image(records: list, key: str, index: int) -> dict:
        """A record about the ``index``-th image when there is one (the examples show several
        images), else the first."""
        stem = f'{index:06d}.png'
        return next((r for r in records if r[key].endswith(stem)), records[0])

    ref = read('refcoco_val.json')[0]
    question = on_image(read('vqa_val.json'), 'image', 1)
    captioned = on_image(read('captions_val.json')['images'], 'file_name', 2)
    salient = on_image(read('salient_val.json') or [ref], 'image_path', 3)
    return [
        example(load_templates(RES)['test'], ref['image_path'], ref['sentences'][0]),
        example(load_templates(VQA)['test'], question['image'], question['question']),
        example(load_templates(CAPTION)['test'], captioned['file_name']),
        example(load_templates(SALIENT)['test'], salient['image_path']),
        example(VIDEO_PROMPT, read('tgif_val.json')[0]['video']),
    ]


# ---------------------------------------------------------------------------- the app
def build_app(chat: ChatDemo, examples: list[dict] | None = None):
    """The gradio Blocks of ``chat``; ``/chat`` is its API endpoint."""
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # no calls home (offline)
    import gradio as gr

    def on_message(message: dict | None, session: ChatSession):
        """Stream ``chat.respond`` to the page. The picture is sent when it changes, not again
        with every word; the last update holds both (it is what an API client gets)."""
        message = message or {}
        files = message.get('files') or []
        shown = None
        for session in chat.respond(session, message.get('text', ''), files[0] if files else None):
            yield (session.messages, session.picture if session.picture != shown else gr.skip(),
                   session)
            shown = session.picture
        yield session.messages, session.picture, session

    def on_new_chat(session: ChatSession):
        session.close()
        return [], None, None, ChatSession()

    with gr.Blocks(title='u-LLaVA', delete_cache=(3600, 3600)) as app:
        gr.Markdown('# u-LLaVA\nAttach an image or a clip and ask about it; the next questions '
                    'are about the same image until you attach another one.')
        session = gr.State(ChatSession(), delete_callback=ChatSession.close)
        with gr.Row():
            with gr.Column(scale=3):
                # the answer as the model wrote it ([SEG], [tag]...), no Markdown; no 'share'
                # buttons: they post to Hugging Face
                chatbot = gr.Chatbot(elem_id='chat', label='Chat', height=520,
                                     render_markdown=False, feedback_options=None,
                                     group_consecutive_messages=False, buttons=['copy', 'copy_all'])
                # any file type: ours are checked in ChatDemo.attach, which answers in the chat
                # (gradio's own check would end in a pop-up instead)
                box = gr.MultimodalTextbox(elem_id='prompt', file_count='single', show_label=False,
                                           placeholder='Attach an image or a clip, ask about it')
                new_chat = gr.Button('New chat', elem_id='new-chat')
            with gr.Column(scale=2):
                picture = gr.Image(elem_id='picture', label='Masks and boxes of the last answer',
                                   type='filepath', interactive=False, height=480,
                                   buttons=['download', 'fullscreen'])
        if examples:
            gr.Examples([[e] for e in examples], inputs=[box], label='Examples from the demo world',
                        elem_id='examples')
        box.submit(on_message, [box, session], [chatbot, picture, session], api_name='chat')
        # a second listener empties the box at once (the first has read it by then): the box is
        # no output of /chat, whose API answer is then just (messages, overlay)
        box.submit(lambda: None, None, [box], queue=False, api_name=False)
        outputs = [chatbot, picture, box, session]
        new_chat.click(on_new_chat, [session], outputs, api_name='new_chat')
        chatbot.clear(on_new_chat, [session], outputs, api_name=False)  # its bin icon
    # one answer at a time (the queue, not a lock): chat_predict sets the shared model's
    # generation settings for its call; the others wait in line and the page shows their place
    app.queue(default_concurrency_limit=1, max_size=32)
    return app


def theme():
    """gradio's default look with system fonts: nothing to fetch from a font server."""
    import gradio as gr
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)


def free_port(host: str = '127.0.0.1', port: int = 0) -> int:
    """``port`` if it is free on ``host`` (0: any free one, gradio cannot be given 0); a
    UserError if it is taken, so a tool can say so before it spends minutes loading a model."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as err:
            raise UserError(f'cannot listen on {host}:{port}: {err.strerror}') from None
        return s.getsockname()[1]


def launch(app, host: str = '127.0.0.1', port: int = 7860,
           allowed_paths: Sequence[str] = ()) -> str:
    """Start serving ``app`` in the background; returns its URL (``port=0``: a free port).

    ``allowed_paths``: folders whose files the page may show besides the system's temp folder
    (a ``ChatDemo.workdir`` elsewhere).
    """
    port = free_port(host, port)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
               max_file_size=MAX_UPLOAD_BYTES, theme=theme(), css=CSS, share=False,
               allowed_paths=list(allowed_paths))
    return f'http://{host}:{app.server_port}/'
