"""tools/infer.py and ullava.apis.infer on the tiny demo config with random weights.

Random weights rarely say [SEG], so most tests use a config whose generation is biased to answer
exactly ``[SEG]`` (then end-of-sentence): masks then always come back, and the mask / overlay
files are exercised. The token ids come from the tiny tokenizer at run time.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_apis.seg_config import write_seg_config  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[2]
DEMO_CFG = ROOT / 'configs/demo/ullava_tiny_demo.py'


def run_tool(*args, timeout=600):
    return subprocess.run([sys.executable, 'tools/infer.py', *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A config that answers [SEG], two images, a clip, a non-image, and a checkpoint."""
    tmp = tmp_path_factory.mktemp('infer')
    seg_cfg = write_seg_config(tmp / 'seg_cfg.py')
    rng = np.random.RandomState(0)
    for name, size in (('scene.png', (48, 80)), ('other.jpg', (64, 64))):
        Image.fromarray((rng.rand(*size, 3) * 255).astype(np.uint8)).save(tmp / name)
    frames = [Image.fromarray((rng.rand(40, 40, 3) * 255).astype(np.uint8)) for _ in range(3)]
    frames[0].save(tmp / 'clip.gif', save_all=True, append_images=frames[1:])
    (tmp / 'notes.txt').write_text('not an image')
    return dict(dir=tmp, seg_cfg=seg_cfg)


@pytest.fixture(scope='module')
def inferencer(files):
    from ullava.apis.infer import load_inferencer
    return load_inferencer(str(files['seg_cfg']), 'none', device='cpu')


@pytest.fixture(scope='module')
def checkpoint(inferencer, files):
    """The random weights of ``inferencer``, saved as tools/train.py's checkpoints are."""
    path = files['dir'] / 'random.pth'
    torch.save({'state_dict': inferencer.model.state_dict()}, path)
    return path


def test_api_returns_text_and_masks(inferencer, files):
    from ullava.apis.infer import predict, read_image_file
    image = read_image_file(files['dir'] / 'scene.png')
    result = predict(inferencer, 'Segment the red circle.', image=image)
    assert result['text'] == '[SEG]'
    assert result['masks'].shape == (1, 48, 80) and result['masks'].dtype == bool
    assert result['boxes'].shape == (1, 4)


def test_api_video_answers_text(files):
    """A clip through the plain config (a [SEG] needs an image for SAM, so no forced [SEG])."""
    from ullava.apis.infer import load_inferencer, predict
    plain = load_inferencer(str(DEMO_CFG), 'none', device='cpu')
    result = predict(plain, 'Describe the video.', video=files['dir'] / 'clip.gif')
    assert isinstance(result['text'], str) and len(result['masks']) == 0


def test_cli_single_image_with_checkpoint(files, checkpoint, tmp_path):
    out = tmp_path / 'out'
    proc = run_tool(files['seg_cfg'], checkpoint, '--image', files['dir'] / 'scene.png',
                    '--prompt', 'Segment the red circle.', '--out', out, '--device', 'cpu')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'answer: [SEG]' in proc.stdout
    mask = np.asarray(Image.open(out / 'scene_mask0.png'))
    assert mask.shape == (48, 80) and set(np.unique(mask)) <= {0, 255}
    overlay = np.asarray(Image.open(out / 'scene_overlay.png'))
    assert overlay.shape == (48, 80, 3)
    (record,) = [json.loads(line) for line in (out / 'results.jsonl').read_text().splitlines()]
    assert record['error'] is None and record['text'] == '[SEG]'
    assert record['masks'] == [str(out / 'scene_mask0.png')] and len(record['boxes']) == 1
    # atomic writes leave no temp / partial files behind
    assert sorted(p.name for p in out.iterdir()) == ['results.jsonl', 'scene_mask0.png',
                                                     'scene_overlay.png']


def test_cli_batch_keeps_going_past_bad_requests(files, tmp_path):
    d = files['dir']
    lines = [json.dumps(dict(image=str(d / 'scene.png'), prompt='Segment the circle.')),
             json.dumps(dict(image='missing.png', prompt='Segment it.')),
             json.dumps(dict(image=str(d / 'notes.txt'), prompt='Segment it.')),
             '{not json',
             json.dumps(dict(image=str(d / 'scene.png'), prompt='  ')),
             json.dumps(dict(image='other.jpg', prompt='Segment the square.')),  # relative path
             json.dumps(dict(image=str(d / 'scene.png'), prompt='Again, please.'))]
    batch = d / 'batch.jsonl'
    batch.write_text('\n'.join(lines) + '\n')
    out = tmp_path / 'out'
    proc = run_tool(files['seg_cfg'], 'none', '--batch', batch, '--out', out, '--device', 'cpu')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '7 requests, 4 failed' in proc.stdout
    assert '7/7' in proc.stderr  # the tqdm progress bar
    records = [json.loads(line) for line in (out / 'results.jsonl').read_text().splitlines()]
    assert [r['error'] is None for r in records] == [True, False, False, False, False, True, True]
    assert 'missing.png does not exist' in records[1]['error']
    assert 'notes.txt is not a readable image' in records[2]['error']
    assert 'line 4 is not JSON' in records[3]['error']
    assert 'prompt is missing or empty' in records[4]['error']
    for record in (records[0], records[5], records[6]):
        assert record['text'] == '[SEG]' and len(record['masks']) == 1
        assert all(Path(p).is_file() for p in record['masks'] + [record['overlay']])
    # the same image twice: the second request's files get their own names
    assert records[0]['masks'] != records[6]['masks']


def test_cli_user_errors(files, tmp_path):
    proc = run_tool(DEMO_CFG, 'none', '--image', files['dir'] / 'notes.txt', '--prompt', 'hi',
                    '--out', tmp_path, '--device', 'cpu')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
    assert 'not a readable image' in proc.stderr


def test_image_size_cap():
    import io
    from ullava.apis.infer import decode_image
    from ullava.utils import UserError
    buf = io.BytesIO()
    Image.new('L', (300, 200)).save(buf, format='PNG')
    with pytest.raises(UserError, match='300x200 = 60,000 pixels; the limit is 50,000'):
        decode_image(buf.getvalue(), 'big.png', max_pixels=50_000)


def test_default_model_is_the_demo_checkpoint(tmp_path):
    """Without CONFIG/CKPT the tools use what `make demo` trained, and say so when it is absent."""
    import pytest

    from ullava.apis.infer import demo_checkpoint
    from ullava.utils import UserError
    with pytest.raises(UserError, match='run `make demo` first'):
        demo_checkpoint(str(tmp_path))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_9.pth'))
    assert demo_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_9.pth')
