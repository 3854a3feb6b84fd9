"""The mask head's losses on sampled points (``mask_head.loss_points``, issue #15): Mask2Former's
importance sampling through mmcv's ``point_sample``; off by default (the reference's dense loss)."""
import pytest
import torch

from ullava.models.heads.mask_head import LOSS_POINTS, check_loss_points
from ullava.registry import HEADS, MODELS
from ullava.utils import UserError

from .batch import mixed_batch

MASK_LOSSES = ('loss_mask_bce', 'loss_mask_dice')


def mask_losses(model, data):
    losses = model(**data, mode='loss')
    return {k: losses[k] for k in MASK_LOSSES}


def decoder_grads(model, data):
    model.zero_grad()
    losses = mask_losses(model, data)
    sum(losses.values()).backward()
    return losses, {n: p.grad.clone() for n, p in model.mask_head.mask_decoder.named_parameters()
                    if p.grad is not None}


@pytest.fixture()
def data(tiny_model):
    tiny_model.eval()  # no dropout: two calls see the same logits
    return tiny_model.data_preprocessor(mixed_batch(tiny_model), True)


def test_off_by_default(tiny_model):
    assert tiny_model.mask_head.loss_points is None


@pytest.mark.parametrize('frame', ['original', 'sam'])
def test_uniform_points_approximate_the_dense_loss(tiny_model, data, frame):
    head = tiny_model.mask_head
    head.loss_frame = frame
    with torch.no_grad():
        dense = mask_losses(tiny_model, data)
        # uniform points only (no oversampling, no importance share): a Monte Carlo estimate of
        # the per-mask pixel means and sums, so close to the dense values with many points
        head.loss_points = check_loss_points(
            dict(num_points=50_000, oversample_ratio=1, importance_sample_ratio=0))
        torch.manual_seed(0)
        points = mask_losses(tiny_model, data)
    for k in MASK_LOSSES:
        assert torch.isfinite(points[k])
        assert torch.allclose(points[k], dense[k], rtol=0.03), (k, points[k], dense[k])


def test_importance_sampling_picks_the_uncertain_points(tiny_model):
    """Logits of 10 except on a band of zeros (a quarter of the frame): with the whole share
    importance-sampled the points lie on the band (|logit| < 5 up to its bilinear edge); with
    none, about three quarters of them are off it."""
    head = tiny_model.mask_head
    logits = torch.full((2, 64, 64), 10.0)
    logits[:, 24:40] = 0.0
    gt = torch.zeros(2, 64, 64, dtype=torch.bool)
    torch.manual_seed(0)
    head.loss_points = check_loss_points(dict(num_points=64, oversample_ratio=8,
                                              importance_sample_ratio=1.0))
    values, targets = head.sample_loss_points(logits, gt)
    assert values.shape == targets.shape == (2, 64)
    assert (values.abs() < 5).all()
    head.loss_points = check_loss_points(dict(num_points=64, importance_sample_ratio=0.0))
    values, _ = head.sample_loss_points(logits, gt)
    assert (values.abs() < 5).float().mean() < 0.5


def test_gradients_reach_the_mask_decoder(tiny_cfg):
    cfg = tiny_cfg.model.copy()
    cfg.mask_head = dict(cfg.mask_head, loss_points=dict(num_points=256))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    assert model.mask_head.loss_points == dict(LOSS_POINTS, num_points=256)
    data = model.data_preprocessor(mixed_batch(model), True)
    losses, grads = decoder_grads(model, data)
    assert all(torch.isfinite(v) for v in losses.values())
    trained = [n for n, p in model.mask_head.mask_decoder.named_parameters() if p.requires_grad]
    for name in ('output_upscaling.0.weight', 'output_hypernetworks_mlps.0.layers.0.weight',
                 'transformer.layers.0.self_attn.q_proj.weight'):
        assert name in trained and name in grads, name
        assert torch.isfinite(grads[name]).all() and grads[name].abs().sum() > 0, name
    seg = model.mask_head.seg_projector[0].weight.grad
    assert seg is not None and seg.abs().sum() > 0


def test_the_same_seed_samples_the_same_points(tiny_model, data):
    tiny_model.mask_head.loss_points = check_loss_points(dict(num_points=128))
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        runs.append(decoder_grads(tiny_model, data))
    (l1, g1), (l2, g2), (l3, _) = runs
    assert all(torch.equal(l1[k], l2[k]) for k in MASK_LOSSES)
    assert g1.keys() == g2.keys() and all(torch.equal(g1[n], g2[n]) for n in g1)
    assert not torch.equal(l1['loss_mask_bce'], l3['loss_mask_bce'])  # another seed, other points


@pytest.mark.parametrize('bad, field', [
    (dict(num_point=100), 'num_point'),
    (dict(num_points=0), 'num_points'),
    (dict(oversample_ratio=0.5), 'oversample_ratio'),
    (dict(importance_sample_ratio=1.5), 'importance_sample_ratio'),
    ([100], 'loss_points'),
])
def test_a_bad_loss_points_is_one_clear_error(tiny_cfg, bad, field):
    cfg = tiny_cfg.model.mask_head
    head_cfg = dict(type='SAMMaskHead', llm_hidden=16, **dict(cfg, loss_points=bad))
    with pytest.raises(UserError, match=field) as err:
        HEADS.build(head_cfg)
    assert '\n' not in str(err.value)
