"""Answer requests with a loaded model and write what they produce (``tools/infer.py``).

One request is ``{"image" | "video": path, "prompt": text}``. Its record (one line of
``results.jsonl``) holds the answer ``text``, the ``boxes`` (xyxy pixels), the paths of the
``masks`` (one PNG per ``[SEG]``: 0 / 255, the format ``mask_path`` annotations use) and of the
``overlay``, and ``error`` (None, or why this request failed: a bad request never stops a batch).
Every file is written to a temp file and renamed into place, so none is ever half-written.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ullava.utils import UserError
from ullava.visualization import overlay, save_png

MAX_PIXELS = 4096 * 4096  # larger inputs are refused: decoding them alone can exhaust memory


DEMO_CONFIG = 'configs/demo/ullava_tiny_demo.py'
DEMO_WORK_DIR = 'work_dirs/demo'


def add_model_arguments(parser) -> None:
    """The arguments every tool that loads a model takes: CONFIG, CKPT, --device, --cfg-options."""
    from mmengine.config import DictAction
    parser.add_argument('config', nargs='?', help='config file path (default: the demo config)')
    parser.add_argument('checkpoint', nargs='?',
                        help="checkpoint file, or 'none' for random weights (default: the "
                             "checkpoint `make demo` trained, work_dirs/demo/)")
    parser.add_argument('--device', choices=['cpu', 'cuda'], help='default: cuda when available')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. model.generation.max_new_tokens=64')


def demo_checkpoint(work_dir: str = DEMO_WORK_DIR) -> str:
    """The checkpoint `make demo` left (its ``last_checkpoint``): the tools' default model."""
    marker = os.path.join(work_dir, 'last_checkpoint')
    if not os.path.isfile(marker):
        raise UserError(f'no checkpoint given and none in {work_dir}/: run `make demo` first, '
                        f'or pass CONFIG CHECKPOINT')
    return open(marker).read().strip()


def load_inferencer(config: str | None, checkpoint: str | None, device: str | None = None,
                    cfg_options: dict | None = None, quiet: bool = True):
    """A :class:`ULLaVAInferencer`; ``checkpoint='none'``: random weights (seeded, so runs repeat).
    With neither config nor checkpoint: the demo model that `make demo` trained.

    ``quiet`` keeps MMEngine's INFO log (the parameter table) off the terminal, which is left
    to the answers.
    """
    from mmengine.logging import MMLogger

    from .inferencer import ULLaVAInferencer
    if quiet and not MMLogger.check_instance_created('ullava_infer'):
        MMLogger.get_instance('ullava_infer', log_level='WARNING')  # becomes the current logger
    config = config or DEMO_CONFIG
    if checkpoint is None:
        checkpoint = demo_checkpoint()
    random = str(checkpoint).lower() == 'none'
    if random:
        torch.manual_seed(0)
    return ULLaVAInferencer(config, None if random else checkpoint, device, cfg_options)


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Image bytes -> RGB uint8 HxWx3. The size is read from the header before decoding."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        raise UserError(f'{name} is too large to open safely (over '
                        f'{Image.MAX_IMAGE_PIXELS * 2:,} pixels)') from None
    except Exception:  # PIL raises several types for data that is not an image
        raise UserError(f'{name} is not a readable image') from None
    if width * height > max_pixels:
        raise UserError(f'{name} is {width}x{height} = {width * height:,} pixels; the limit is '
                        f'{max_pixels:,} (e.g. 4096x4096): downscale it first')
    import mmcv
    try:
        img = mmcv.imfrombytes(data, flag='color', channel_order='rgb')  # as the training loader
        if img is None:  # a format PIL knows and OpenCV does not, or a truncated file
            with Image.open(io.BytesIO(data)) as im:
                img = np.asarray(im.convert('RGB'))
    except Exception:  # the header was fine, the pixels are not
        raise UserError(f'{name} is not a readable image (damaged or truncated)') from None
    return img


def read_image_file(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f'image {path} does not exist')
    return decode_image(path.read_bytes(), str(path), max_pixels)


def read_first_frame(path: str | os.PathLike, name: str | None = None,
                     max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The first frame of a clip (GIF, video file or folder of frames), to draw results on."""
    from ullava.datasets.transforms.loading import LoadVideo
    name = name or str(path)
    try:
        frame = LoadVideo(num_frames=1).transform(dict(video_path=str(path)))['frames'][0]
    except UserError as err:  # its message starts with a dataset record we do not have
        detail = str(err).split(': ', 1)[-1].replace(str(path), name)
        raise UserError(detail.removeprefix('video_path ')) from None
    if frame.shape[0] * frame.shape[1] > max_pixels:
        raise UserError(f'{name} has {frame.shape[1]}x{frame.shape[0]} frames; the limit is '
                        f'{max_pixels:,} pixels per frame')
    return frame


def predict(inferencer, prompt: str, image: np.ndarray | None = None,
            video: str | os.PathLike | None = None) -> dict:
    """The inferencer's result (one mask per ``[SEG]`` of the answer, one box per ``[LOC]``)
    with numpy ``masks`` / ``boxes``; ``fields``: plugin heads' other predictions."""
    result = inferencer(prompt, image=image, video=None if video is None else str(video))
    fields = {k: v.numpy() if hasattr(v, 'numpy') else v
              for k, v in result.get('fields', {}).items()}
    return dict(text=result['text'], masks=result['masks'].numpy(),
                boxes=result['boxes'].numpy(), fields=fields)


def draw(canvas: np.ndarray, result: dict) -> np.ndarray:
    """The result's masks and boxes over the input image (or a clip's first frame)."""
    return overlay(canvas, result['masks'], result['boxes'], fields=result.get('fields'))


def write_outputs(out_dir: Path, stem: str, canvas: np.ndarray | None, result: dict) -> dict:
    """``<stem>_mask<k>.png`` per [SEG] and ``<stem>_overlay.png``; returns their paths."""
    paths: dict = dict(masks=[], overlay=None)
    for k, mask in enumerate(result['masks']):
        path = out_dir / f'{stem}_mask{k}.png'
        save_png(path, mask.astype(bool))
        paths['masks'].append(str(path))
    if canvas is not None and (len(result['masks']) or len(result['boxes'])
                               or any(len(v) for v in result.get('fields', {}).values())):
        paths['overlay'] = str(out_dir / f'{stem}_overlay.png')
        save_png(paths['overlay'], draw(canvas, result))
    return paths


def run_request(inferencer, request: dict, out_dir: Path, stem: str) -> dict:
    """Answer one request and write its files; a bad request becomes a record with ``error``."""
    known = request if isinstance(request, dict) else {}
    record = dict(image=known.get('image'), video=known.get('video'), prompt=known.get('prompt'),
                  text=None, boxes=[], masks=[], overlay=None, error=None)
    try:
        image, video = check_request(request)
        canvas = read_image_file(image) if image else read_first_frame(video) if video else None
        result = predict(inferencer, request['prompt'], canvas if image else None, video)
        record.update(text=result['text'], boxes=np.round(result['boxes'], 2).tolist(),
                      **write_outputs(out_dir, stem, canvas, result))
        for name, value in result['fields'].items():  # a plugin head's own predictions
            record[name.removeprefix('pred_')] = np.round(np.asarray(value, float), 2).tolist()
    except UserError as err:
        record['error'] = str(err)
    except torch.cuda.OutOfMemoryError:  # this input was too large; the next may fit
        torch.cuda.empty_cache()
        record['error'] = 'out of GPU memory on this request'
    return record


def check_request(request: dict) -> tuple[str | None, str | None]:
    """Validate one request's keys; returns its (image, video) paths."""
    if not isinstance(request, dict):
        raise UserError(f'a request must be a JSON object, got {type(request).__name__}')
    unknown = set(request) - {'image', 'video', 'prompt'}
    if unknown:
        raise UserError(f'unknown keys {sorted(unknown)}; a request has image or video, and prompt')
    for key in ('image', 'video'):
        if request.get(key) is not None and not isinstance(request[key], str):
            raise UserError(f'"{key}" must be a path (a string), got {request[key]!r}')
    if request.get('image') and request.get('video'):
        raise UserError('a request has an image or a video, not both')
    prompt = request.get('prompt')
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError('the prompt is missing or empty')
    return request.get('image') or None, request.get('video') or None


def read_batch(path: str | os.PathLike) -> list[dict]:
    """Requests of a JSON-lines file. Relative paths are relative to the file's folder (a batch
    file travels with its data). A line that is not JSON becomes ``{'_error': why}``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'batch file not found: {path}')
    requests = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as err:
            requests.append({'_error': f'{path} line {number} is not JSON ({err.msg})'})
            continue
        if isinstance(request, dict):
            for key in ('image', 'video'):
                if isinstance(request.get(key), str) and not os.path.isabs(request[key]):
                    request[key] = str(path.parent / request[key])
        requests.append(request)
    return requests


def _stems(requests: list[dict]) -> list[str]:
    """Output file stems: the input's file name, made unique within the batch."""
    seen: dict[str, int] = {}
    stems = []
    for i, request in enumerate(requests):
        known = request if isinstance(request, dict) else {}
        source = known.get('image') or known.get('video')
        stem = Path(source).stem if isinstance(source, str) and source else f'request{i}'
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f'{stem}-{i}')
    return stems


def run_batch(inferencer, requests: list[dict], out_dir: str | os.PathLike,
              progress: bool = True) -> list[dict]:
    """Answer every request; ``<out_dir>/results.jsonl`` gets one line per request, in order
    (one per non-blank line of the batch file).

    Lines are appended to a hidden partial file as requests finish and the file is renamed to
    ``results.jsonl`` at the end -- also after an interrupt, so finished work is kept and the
    visible file only ever holds whole lines.
    """
    from tqdm import tqdm
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f'.results.jsonl.partial-{os.getpid()}'
    records = []
    try:
        with open(partial, 'w') as f:
            bar: Iterable = tqdm(list(zip(requests, _stems(requests))), desc='infer', unit='req',
                                 disable=not progress)
            for request, stem in bar:
                if isinstance(request, dict) and '_error' in request:  # a line that is not JSON
                    record = run_request(inferencer, {}, out_dir, stem)
                    record['error'] = request['_error']
                else:
                    record = run_request(inferencer, request, out_dir, stem)
                records.append(record)
                f.write(json.dumps(record) + '\n')
                f.flush()
    finally:
        os.replace(partial, out_dir / 'results.jsonl')
    return records
