"""The LM loss's reduction: over tokens (the reference's) or per sample (``ce_reduction``)."""
import pytest
import torch

from ullava.models.tokens import IGNORE_INDEX
from ullava.utils import UserError

from .batch import mixed_batch


def _ce(model, batch):
    data = model.data_preprocessor(batch, True)
    return model(**data, mode='loss')['loss_ce']


def test_sample_reduction_is_the_mean_of_each_samples_own_loss(tiny_model):
    torch.manual_seed(0)
    model, was_training = tiny_model, tiny_model.training
    model.eval()  # no dropout: the same states alone and in the batch
    batch = mixed_batch(model)
    try:
        with torch.no_grad():
            alone = [_ce(model, dict(inputs=[x], data_samples=[d]))
                     for x, d in zip(batch['inputs'], batch['data_samples'])]
            by_token = _ce(model, batch)
            model.ce_reduction = 'sample'
            by_sample = _ce(model, batch)
    finally:
        model.ce_reduction = 'token'
        model.train(was_training)
    counts = torch.tensor([int((x['labels'][1:] != IGNORE_INDEX).sum()) for x in batch['inputs']])
    alone = torch.stack(alone)
    assert len(set(counts.tolist())) > 1  # answers of different lengths: the two differ
    torch.testing.assert_close(by_sample, alone.mean(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(by_token, (alone * counts).sum() / counts.sum(), rtol=1e-4, atol=1e-5)
    assert not torch.isclose(by_sample, by_token)


def test_unknown_reduction_is_refused(tiny_cfg):
    from ullava.registry import MODELS
    cfg = tiny_cfg.model.copy()
    cfg['ce_reduction'] = 'mean'
    with pytest.raises(UserError, match='model.ce_reduction'):
        MODELS.build(cfg)
