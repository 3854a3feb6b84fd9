"""The pieces of exact resume, each on its own (the end-to-end test is test_resume.py)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from ullava.engine.hooks import RandomStateHook
from ullava.utils import install_compat, mark_work_dir
from ullava.utils.reproducibility import random_states, restore_random_states

ROOT = Path(__file__).resolve().parents[2]


def test_random_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    states = random_states()
    torch.save(states, tmp_path / 'states.pth')
    expected = torch.rand(4), np.random.rand(4)
    torch.rand(100), np.random.rand(100)  # move on
    restore_random_states(torch.load(tmp_path / 'states.pth', weights_only=True))
    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.rand(4), expected[1])


def test_deterministic_mode_switches_mkl_to_its_reproducible_mode_by_itself():
    """No MKL_CBWR in the environment: prepare_deterministic switches it before MKL runs."""
    code = ('from mmengine.config import Config\n'
            'from ullava.utils.reproducibility import mkl_reproducible, prepare_deterministic\n'
            'assert mkl_reproducible() is False\n'
            'prepare_deterministic(Config(dict(randomness=dict(deterministic=True),'
            ' env_cfg=dict(num_threads=1))))\n'
            'import torch; a = torch.randn(64, 64); a @ a\n'
            'print(mkl_reproducible(), torch.get_num_threads())\n')
    env = {k: v for k, v in __import__('os').environ.items() if k != 'MKL_CBWR'}
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['True', '1']


class _Noisy(BaseModel):
    """A linear model with dropout: its training draws from torch's global generator."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5),
                                       torch.nn.Linear(16, 1))

    def forward(self, x, y, mode='loss'):
        return dict(loss=((self.net(x) - y) ** 2).mean())


class _Points(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(x=torch.randn(4, generator=g), y=torch.randn(1, generator=g))


def _runner(work: Path, iters: int, resume: str | None = None) -> Runner:
    install_compat()  # ullava's trusted loading of its own work dirs' checkpoints
    mark_work_dir(work)
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(model=_Noisy(), work_dir=str(work), experiment_name=f'run{iters}{bool(resume)}',
                  train_dataloader=dict(dataset=_Points(), batch_size=4,
                                        sampler=dict(type='InfiniteSampler', shuffle=True),
                                        collate_fn=dict(type='default_collate')),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                  train_cfg=dict(by_epoch=False, max_iters=iters),
                  default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                                     interval=2)),
                  custom_hooks=[dict(type=RandomStateHook)],
                  randomness=dict(seed=0, deterministic=True),
                  resume=resume is not None, load_from=resume,
                  default_scope='ullava')  # the suite's scope: 'mmengine' would stay current


def test_resume_replays_the_random_stream(tmp_path):
    """With dropout the resumed run equals the straight one only if the generator is restored."""
    straight = _runner(tmp_path / 'a', 4)
    straight.train()
    _runner(tmp_path / 'b', 2).train()
    resumed = _runner(tmp_path / 'b', 4, resume=str(tmp_path / 'b' / 'iter_2.pth'))
    resumed.train()
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    # and without the saved state the stream differs (the test would not see a missing restore)
    ckpt = torch.load(tmp_path / 'b' / 'iter_2.pth', weights_only=False)
    del ckpt['random_states']
    torch.save(ckpt, tmp_path / 'b' / 'stateless.pth')
    blind = _runner(tmp_path / 'c', 4, resume=str(tmp_path / 'b' / 'stateless.pth'))
    blind.train()
    assert any(not torch.equal(p, q) for p, q in zip(straight.model.parameters(),
                                                      blind.model.parameters()))
