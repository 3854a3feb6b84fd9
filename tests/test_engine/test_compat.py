"""The compatibility module: atomic checkpoint writes and the checkpoint trust boundary."""
import pickle

import pytest
import torch

from ullava.utils import UserError, install_compat, load_external_checkpoint, mark_work_dir


class Payload:
    """Unpickling this would run code of our choosing: it must never load from outside."""


def test_external_checkpoint_loads_tensors_only(tmp_path):
    plain = tmp_path / 'plain.pth'
    torch.save({'w': torch.ones(2)}, plain)
    assert torch.equal(load_external_checkpoint(plain)['w'], torch.ones(2))
    evil = tmp_path / 'evil.pth'
    torch.save({'obj': Payload()}, evil)
    with pytest.raises(UserError, match='not in a ullava work dir'):
        load_external_checkpoint(evil)
    with pytest.raises(UserError, match='checkpoint not found'):
        load_external_checkpoint(tmp_path / 'missing.pth')


def test_mmengine_loader_trusts_only_ullava_work_dirs(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    install_compat()
    outside = tmp_path / 'outside'
    outside.mkdir()
    torch.save({'meta': {'obj': Payload()}}, outside / 'ckpt.pth')
    with pytest.raises(UserError):
        _load_checkpoint(str(outside / 'ckpt.pth'))
    work = tmp_path / 'work'
    mark_work_dir(work)
    torch.save({'meta': {'obj': Payload()}}, work / 'ckpt.pth')
    assert isinstance(_load_checkpoint(str(work / 'ckpt.pth'))['meta']['obj'], Payload)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    """A failure in the middle of writing leaves the previous checkpoint intact."""
    from mmengine.fileio import get_file_backend
    install_compat()
    target = tmp_path / 'iter_1.pth'
    target.write_bytes(b'old complete checkpoint')
    backend = get_file_backend(str(target))

    class Boom(Exception):
        pass

    import os
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise Boom()
    monkeypatch.setattr(os, 'fsync', failing_fsync)
    with pytest.raises(Boom):
        backend.put(b'new half-written', str(target))
    monkeypatch.setattr(os, 'fsync', real_fsync)
    assert target.read_bytes() == b'old complete checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_1.pth']  # no temp file left
    backend.put(b'new', str(target))
    assert target.read_bytes() == b'new'
