"""The web demo: one HTML page to upload an image or a clip, ask, and see the answer + overlay.

Why the standard library (``http.server``) and not gradio: the demo is one form and one result,
which a plain HTML page does without JavaScript. gradio would add ~100 packages (FastAPI, a
front-end bundle, ...), take seconds to import, and its page loads assets that an offline machine
may not have; ``ThreadingHTTPServer`` installs nothing and starts in milliseconds. The multipart
form is parsed with ``email.parser`` (the ``cgi`` module is deprecated and gone in Python 3.13).

Nothing is written to disk except a clip's bytes, into a temporary folder that is removed after the
request (OpenCV decodes video only from a file); the overlay travels inside the page as a PNG data
URI. Bad input ends as a message on the page; the server keeps serving.
"""
from __future__ import annotations

import base64
import html
import io
import logging
import tempfile
import threading
import traceback
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from ullava.utils import UserError
from ullava.visualization import encode_png

from .infer import MAX_PIXELS, decode_image, draw, predict, read_first_frame

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
VIDEO_SUFFIXES = {'.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg'}
logger = logging.getLogger('ullava.web')

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>u-LLaVA demo</title>
<style>
body {{ font-family: sans-serif; max-width: 50em; margin: 2em auto; }}
textarea {{ width: 100%; }} .error {{ color: #b00020; font-weight: bold; }}
#answer {{ background: #f2f2f2; padding: .5em; white-space: pre-wrap; }}
#overlay {{ max-width: 100%; image-rendering: pixelated; min-width: 256px; }}
</style></head><body>
<h1>u-LLaVA</h1>
<form method="post" action="/" enctype="multipart/form-data">
<p><label>Image or clip: <input type="file" id="file" name="file"
  accept="image/*,video/*,.gif"></label></p>
<p><label for="prompt">Prompt:</label><br>
<textarea id="prompt" name="prompt" rows="3">{prompt}</textarea></p>
<p><button type="submit" id="submit">Ask</button></p>
</form>
{result}
</body></html>
"""


class WebDemo:
    """The page's logic: validate an upload and a prompt, answer, render the page.

    Args:
        inferencer: a loaded :class:`ULLaVAInferencer` (used under a lock: one answer at a time).
        max_pixels: larger images (or clip frames) are refused with a message.
        max_upload_bytes: larger uploads are refused before they are read into memory.
    """

    def __init__(self, inferencer, max_pixels: int = MAX_PIXELS,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.inferencer = inferencer
        self.max_pixels = max_pixels
        self.max_upload_bytes = max_upload_bytes
        self.lock = threading.Lock()

    def page(self, prompt: str = '', answer: str | None = None, overlay_png: bytes | None = None,
             error: str | None = None) -> str:
        parts = []
        if error is not None:
            parts.append(f'<p id="error" class="error">{html.escape(error)}</p>')
        if answer is not None:
            parts.append(f'<h2>Answer</h2><p id="answer">{html.escape(answer)}</p>')
        if overlay_png is not None:
            data = base64.b64encode(overlay_png).decode()
            parts.append(f'<img id="overlay" alt="overlay" src="data:image/png;base64,{data}">')
        return PAGE.format(prompt=html.escape(prompt), result='\n'.join(parts))

    @staticmethod
    def _is_clip(filename: str, data: bytes) -> bool:
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

    def answer(self, prompt: str, filename: str = '',
               data: bytes = b'') -> tuple[str, bytes | None]:
        """(answer text, overlay PNG or None); UserError for bad input."""
        if not prompt.strip():
            raise UserError('Please type a prompt: it is empty.')
        name = Path(filename).name or 'the upload'
        if not data:
            if filename:
                raise UserError(f'{name} is empty.')
            with self.lock:  # no upload: a text-only question
                return predict(self.inferencer, prompt)['text'], None
        if not self._is_clip(filename, data):
            image = decode_image(data, name, self.max_pixels)
            with self.lock:
                result = predict(self.inferencer, prompt, image=image)
            return result['text'], encode_png(draw(image, result))
        with tempfile.TemporaryDirectory(prefix='ullava-web-') as tmp:
            path = Path(tmp) / f'clip{Path(filename).suffix.lower() or ".mp4"}'
            path.write_bytes(data)
            frame = read_first_frame(path, name, self.max_pixels)
            with self.lock:
                result = predict(self.inferencer, prompt, video=path)
        return result['text'], encode_png(draw(frame, result))

    def handle(self, fields: dict) -> str:
        """The page for a submitted form (``fields``: name -> str or (filename, bytes))."""
        prompt = fields.get('prompt') if isinstance(fields.get('prompt'), str) else ''
        filename, data = fields.get('file') if isinstance(fields.get('file'), tuple) else ('', b'')
        try:
            text, overlay_png = self.answer(prompt, filename, data)
        except UserError as err:
            return self.page(prompt, error=str(err))
        except Exception as err:  # a bug must not take the server down: report it, keep serving
            logger.error('request failed:\n%s', traceback.format_exc())
            return self.page(prompt, error=f'Internal error ({type(err).__name__}: {err}); '
                                           f'the server log has the details.')
        return self.page(prompt, answer=text, overlay_png=overlay_png)


def parse_form(content_type: str, body: bytes) -> dict:
    """multipart/form-data -> {name: str, or (filename, bytes) for a file field}."""
    if not content_type.startswith('multipart/form-data'):
        raise UserError('the form must be sent as multipart/form-data')
    message = BytesParser(policy=HTTP).parsebytes(
        f'Content-Type: {content_type}\r\n\r\n'.encode() + body)
    fields: dict = {}
    for part in message.iter_parts():
        name = part.get_param('name', header='content-disposition')
        if not name:
            continue
        payload = part.get_payload(decode=True) or b''
        filename = part.get_filename()
        if filename is not None:
            fields[name] = (filename, payload)
        else:
            fields[name] = payload.decode(part.get_content_charset() or 'utf-8', 'replace')
    return fields


class _Handler(BaseHTTPRequestHandler):
    server: '_Server'

    def _send(self, body: str, status: int = 200) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split('?')[0] != '/':
            self._send('<p>not found</p>', 404)
            return
        self._send(self.server.demo.page())

    def do_POST(self) -> None:  # noqa: N802
        demo = self.server.demo
        length = int(self.headers.get('Content-Length') or 0)
        if length > demo.max_upload_bytes:
            # read and drop it (never held in memory): a browser shows our reply only once its
            # upload is taken
            while length > 0:
                chunk = self.rfile.read(min(1 << 20, length))
                if not chunk:
                    break
                length -= len(chunk)
            self._send(demo.page(error=f'The upload is too large (limit '
                                       f'{demo.max_upload_bytes // (1 << 20)} MiB).'))
            return
        try:
            fields = parse_form(self.headers.get('Content-Type', ''), self.rfile.read(length))
        except UserError as err:
            self._send(demo.page(error=str(err)), 400)
            return
        self._send(demo.handle(fields))

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        logger.info('%s %s', self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung browser connection does not keep the process alive

    def __init__(self, address: tuple[str, int], demo: WebDemo) -> None:
        super().__init__(address, _Handler)
        self.demo = demo


def make_server(demo: WebDemo, host: str = '127.0.0.1', port: int = 7860) -> ThreadingHTTPServer:
    """The HTTP server of ``demo`` (``port=0``: any free port; see ``server.server_port``)."""
    return _Server((host, port), demo)
