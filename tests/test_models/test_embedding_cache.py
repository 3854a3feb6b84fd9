"""The frozen-encoder embedding cache: same numbers, keyed by weights and input, never stale, on
disk between processes, shared by the SAM-encoder vision tower and SAM's mask head."""
import copy

import pytest
import torch
from torch import nn

from ullava.models import embedding_cache as ec
from ullava.models.embedding_cache import EmbeddingCache
from ullava.registry import MODELS

from .batch import mixed_batch


class CountingEncoder(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.rows = 0

    def forward(self, x):
        self.rows += len(x)
        return self.drop(self.conv(x))


@pytest.fixture(autouse=True)
def fresh_stores(monkeypatch):
    monkeypatch.setattr(ec, '_STORES', {})


def frozen(encoder):
    return encoder.requires_grad_(False).eval()


def test_cached_equals_computed_and_the_encoder_runs_once_per_input():
    torch.manual_seed(0)
    enc, cache = frozen(CountingEncoder()), EmbeddingCache()
    x = torch.randn(3, 3, 8, 8)
    first = cache(enc, x)
    assert torch.equal(first, enc(x))
    enc.rows = 0
    again = cache(enc, torch.cat([x[1:], torch.randn(1, 3, 8, 8)]))  # two known, one new
    assert enc.rows == 1 and cache.hits == 2 and cache.misses == 4
    assert torch.equal(again[:2], first[1:])


def test_a_changed_image_transform_or_weight_file_is_never_served_stale():
    torch.manual_seed(0)
    enc, cache = frozen(CountingEncoder()), EmbeddingCache()
    x = torch.randn(2, 3, 8, 8)
    cache(enc, x)
    changed_pixel = x.clone()
    changed_pixel[1, 0, 0, 0] += 1e-3
    out = cache(enc, changed_pixel)
    assert cache.misses == 3 and torch.allclose(out[1], enc(changed_pixel)[1], atol=1e-6)
    cache(enc, x.double().float() * 1.0)  # equal bytes: a hit
    assert cache.misses == 3
    cache(enc, torch.nn.functional.interpolate(x, size=(9, 9)))  # another transform: new keys
    assert cache.misses == 5
    with torch.no_grad():  # new weights, loaded in place (as load_state_dict does)
        state = {k: v + 0.5 for k, v in enc.state_dict().items()}
    enc.load_state_dict(state)
    out = cache(enc, x)
    assert cache.misses == 7 and torch.allclose(out, enc(x))


def test_entries_survive_the_process_on_disk(tmp_path, monkeypatch):
    torch.manual_seed(0)
    enc = frozen(CountingEncoder())
    x = torch.randn(2, 3, 8, 8)
    expected = EmbeddingCache(tmp_path)(enc, x)
    monkeypatch.setattr(ec, '_STORES', {})  # a new process: nothing in memory
    enc.rows = 0
    cache = EmbeddingCache(tmp_path)
    assert torch.equal(cache(enc, x), expected) and enc.rows == 0 and cache.hits == 2
    # a truncated entry (a killed run) is recomputed, not an error
    victim = next(tmp_path.rglob('*.pt'))
    victim.write_bytes(victim.read_bytes()[:10])
    monkeypatch.setattr(ec, '_STORES', {})
    assert torch.allclose(EmbeddingCache(tmp_path)(enc, x), expected, atol=1e-6) and enc.rows == 1


def test_trainable_or_random_encoders_are_not_cached():
    x = torch.randn(2, 3, 8, 8)
    trains = CountingEncoder().eval()
    cache = EmbeddingCache()
    cache(trains, x), cache(trains, x)
    assert trains.rows == 4 and cache.hits == 0
    dropout = CountingEncoder(dropout=0.5).requires_grad_(False).train()
    cache(dropout, x), cache(dropout, x)
    assert dropout.rows == 4 and cache.hits == 0


@pytest.fixture()
def shared_cfg(tiny_cfg, tmp_path):
    """The tiny model with the demo's wiring: a SAM-encoder tower and a TinyViT mask head
    (random weights), one cache folder."""
    cfg = copy.deepcopy(tiny_cfg.model)
    cache = dict(cache_dir=str(tmp_path / 'cache'))
    cfg.vision_tower = dict(type='SAMEncoderTower', image_size=64, num_frames=4,
                            embedding_cache=cache)
    cfg.mask_head = dict(encoder='tiny_vit', image_size=64, patch_size=16, prompt_dim=256,
                         decoder=dict(depth=1, mlp_dim=64, num_heads=2), embedding_cache=cache)
    return cfg


def test_tower_and_mask_head_share_one_encoder_pass(shared_cfg):
    torch.manual_seed(0)
    model = MODELS.build(shared_cfg)
    model.mask_head.image_encoder.load_state_dict(model.vision_tower.encoder.state_dict())
    model.train()
    assert model.image_tokens == 16  # (64 / 16)^2 cells
    calls = []
    for enc in (model.vision_tower.encoder, model.mask_head.image_encoder):
        enc.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    batch = mixed_batch(model)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    # 3 images (the tower computes them; SAM's head finds them) + 4 frames of the clip
    assert sorted(calls) == [3, 4]
    calls.clear()
    model(**model.data_preprocessor(batch, True), mode='loss')
    assert calls == []  # the second epoch computes nothing
    loss = sum(losses.values())
    loss.backward()
    assert model.projector[0].weight.grad is not None


def test_warm_hook_computes_each_image_once(shared_cfg, world):
    from ullava.datasets import MixtureDataset
    from ullava.engine.hooks.embedding_cache_hook import warm_embedding_caches
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    model = MODELS.build(shared_cfg).train()
    pipeline = [dict(type='LoadImage'), dict(type='LoadMasks'),
                dict(type='ResizeForCLIP', size=64), dict(type='ResizeForSAM', size=64),
                dict(type='TokenizeConversation', tokenizer=dict(tiny=True), template='conv_sep2',
                     image_token_len=16, video_token_len=20),
                dict(type='PackULLaVAInputs')]
    with DefaultScope.overwrite_default_scope('ullava'):
        ds = MixtureDataset([dict(type='RefCOCODataset', data_root=str(world), task='res',
                                  ann_file='val/refcoco_val.json', pipeline=pipeline,
                                  test_mode=True)])
    rows = []
    model.vision_tower.encoder.register_forward_hook(lambda m, i, o: rows.append(len(i[0])))
    warmed = warm_embedding_caches(model, ds, batch_size=4)
    images = {ds.datasets[0].get_data_info(i)['img_path'] for i in range(len(ds.datasets[0]))}
    assert warmed == len(images) and sum(rows) == len(images)
    assert model.training  # given back in the mode it came


def test_sam_tower_tokens_carry_position_and_colour():
    from ullava.models.vision import SAMEncoderTower
    torch.manual_seed(0)
    tower = SAMEncoderTower(image_size=64, position_features=8, pixel_features=2).eval()
    assert tower.hidden_size == 256 + 8 + 12 and tower.num_patches == 16
    image = torch.zeros(1, 3, 64, 64)
    image[0, 0, :, 32:] = 1.0  # red channel on in the right half
    tokens = tower(image)[0]
    colour = tokens[:, 256:268].reshape(16, 3, 4)  # channel x 2x2 sub-cells
    red = colour[:, 0].mean(1).reshape(4, 4)
    assert torch.equal(red[:, 2:], torch.ones(4, 2)) and torch.equal(red[:, :2], torch.zeros(4, 2))
    position = tokens[:, 268:]
    assert torch.equal(position, tower(torch.randn(1, 3, 64, 64))[0, :, 268:])  # image-free
    assert len({tuple(p.tolist()) for p in position}) == 16  # every cell its own code
