"""`make demo` shortened (`tools/run_demo.py --quick`): world -> train -> test -> plots, end to end."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_demo_writes_metrics_and_pictures(tmp_path, mobile_sam_dir):
    proc = subprocess.run([sys.executable, 'tools/run_demo.py', '--quick', '--data',
                           str(tmp_path / 'world'), '--work-dir', str(tmp_path / 'demo'),
                           '--mini-dir', str(mobile_sam_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    work = tmp_path / 'demo'
    metrics = json.loads((work / 'metrics.json').read_text())
    tasks = {key.split('/')[0] for key in metrics}
    assert tasks == {'res', 'rec', 'caption', 'video_caption', 'vqa', 'salient', 'semseg'}
    for name in ('loss_curve.png', 'predictions.png'):
        png = (work / name).read_bytes()
        assert png.startswith(b'\x89PNG') and len(png) > 5000, name
    assert 'metric' in proc.stdout and 'res/cIoU' in proc.stdout  # the closing table
    # MobileSAM's embeddings, computed once before training, kept for the next run
    cache = list((work / 'embedding_cache').rglob('*.pt'))
    assert cache
