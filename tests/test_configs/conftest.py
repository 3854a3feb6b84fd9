"""Session fixtures of the config tests: the stand-in weights and the miniature data root, laid
out as ULLAVA_CKPT_DIR and ULLAVA_DATA_ROOT (configs/_base_/paths.py, docs/datasets.md)."""
from pathlib import Path

import pytest

from .mini_data_root import write_data_root
from .stand_ins import write_checkpoints


@pytest.fixture(scope='session')
def ckpt_dir(tmp_path_factory) -> Path:
    return write_checkpoints(tmp_path_factory.mktemp('ckpt'))


@pytest.fixture(scope='session')
def data_root(tmp_path_factory) -> Path:
    return write_data_root(tmp_path_factory.mktemp('data'))


@pytest.fixture()
def ullava_env(ckpt_dir, data_root, world, monkeypatch) -> dict:
    """The environment a user sets: both roots (and the demo world for the demo configs)."""
    env = dict(ULLAVA_CKPT_DIR=str(ckpt_dir), ULLAVA_DATA_ROOT=str(data_root),
               ULLAVA_DEMO_DATA=str(world))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
