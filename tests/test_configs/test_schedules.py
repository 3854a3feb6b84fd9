"""The epoch-fraction warm-up of the 7B schedules (ullava/engine/schedulers.py) on short epochs:
MMEngine's own conversion makes 3 % of a 1-iteration epoch 0 iterations and refuses to build
("end should be larger than begin, but got begin=0, end=0")."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from ullava.engine.schedulers import epoch_bounds_to_iters

ROOT = Path(__file__).resolve().parents[2]


def lr_curve(schedule: list[dict], epoch_length: int, epochs: int, lr: float = 1.0) -> list[float]:
    """The learning rate of every iteration, the schedulers built as the Runner builds them."""
    from ullava.registry import PARAM_SCHEDULERS
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    built = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=opt,
                                                              epoch_length=epoch_length))
             for s in schedule]
    lrs = []
    for _ in range(epochs * epoch_length):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in built:
            s.step()
    return lrs


def stage_schedule(max_epochs: int) -> list[dict]:
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/schedules/adamw_cosine_epochs.py'))
    ratio = cfg.warmup_ratio
    return [dict(cfg.param_scheduler[0], end=ratio * max_epochs),
            dict(cfg.param_scheduler[1], begin=ratio * max_epochs, end=max_epochs)]


def test_mmengine_conversion_fails_on_a_short_epoch():
    from mmengine.optim.scheduler import LinearLR
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match='end should be larger than begin'):
        LinearLR.build_iter_from_epoch(opt, begin=0, end=0.03, epoch_length=1)


@pytest.mark.parametrize('begin, end, length, expected', [
    (0, 0.03, 1, (0, 2)),          # 3 % of 1 iteration: still a 2-step warm-up
    (0.03, 1, 1, (2, 3)),          # ... and the cosine starts where it ends
    (0, 0.15, 100, (0, 15)),       # 0.03 * 5 epochs of 100: 15, not 16 (float rounding)
    (0.15, 5, 100, (15, 500)),
    (0, 0.03, 34, (0, 2)),         # ceil(1.02) = 2, as transformers' ceil(warmup_ratio * steps)
    (0, 0.03, 100, (0, 3)),
])
def test_epoch_bounds_round_up_and_leave_room(begin, end, length, expected):
    assert epoch_bounds_to_iters(begin, end, length) == expected


@pytest.mark.parametrize('epoch_length, epochs', [(1, 1), (1, 5), (3, 5), (40, 1)])
def test_stage_schedule_builds_and_warms_up_on_any_epoch_length(epoch_length, epochs):
    lrs = lr_curve(stage_schedule(epochs), epoch_length, epochs)
    assert lrs[0] == pytest.approx(1e-3)  # LinearLR's start_factor
    if len(lrs) >= 2:
        assert lrs[1] == pytest.approx(1.0)  # the peak after the (2-step) warm-up
        assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))  # then only down


def test_stage_schedule_matches_the_reference_length_on_long_runs():
    """5 epochs of 100 iterations: warm-up ceil(0.03 * 500) = 15 iterations, then cosine to 0."""
    lrs = lr_curve(stage_schedule(5), 100, 5)
    assert lrs.index(max(lrs)) == 14 and max(lrs) == pytest.approx(1.0)
    assert lrs[15] == pytest.approx(1.0) and lrs[-1] < 1e-3
