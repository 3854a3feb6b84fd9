"""bench/bench_reference_config.py: the issue's batch layout, and the embedding-cache variant
computing the same losses as the full step without running the SAM encoder or CLIP."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'bench'))

from bench_reference_config import (embedding_caches, reference_model_cfg,  # noqa: E402
                                    res_batch)


@pytest.fixture(scope='module')
def model():
    from ullava.registry import MODELS
    torch.manual_seed(0)
    # the issue's configuration, SAM at 256 px instead of 1024 to keep the test short
    return MODELS.build(reference_model_cfg(sam_size=256))


def test_model_is_the_issues_configuration(model):
    llm = model.llm.config
    assert (llm.hidden_size, llm.num_hidden_layers, llm.num_attention_heads,
            llm.intermediate_size) == (256, 2, 4, 688)
    assert llm.vocab_size == 32000 + len(model.token_ids) + 1  # + ullava's tokens and [PAD]
    assert model.image_tokens == 256 and isinstance(model.projector, torch.nn.Linear)
    trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'projector', 'llm', 'mask_head', 'box_head'}
    assert not any(p.requires_grad for p in model.mask_head.image_encoder.parameters())


def test_batch_layout(model):
    batch = res_batch(model)
    ids = model.token_ids
    lengths = [len(x['input_ids']) for x in batch['inputs']]
    assert lengths == [41 + 256 + 16, 37 + 256 + 16]
    for x in batch['inputs']:
        answer = x['input_ids'][x['prompt_len']:]
        assert len(answer) == 16 and int((x['labels'] != -100).sum()) == 16
        assert int((answer == ids['[SEG]']).sum()) == 1 and int((answer == ids['[LOC]']).sum()) == 1
        assert int((x['input_ids'] == ids['<image_patch>']).sum()) == 256
    ds = batch['data_samples'][0]
    assert tuple(ds.gt_masks.shape) == (1, 480, 640) and ds.gt_masks.any()
    assert ds.metainfo['sam_resized_shape'] == (192, 256)


def test_cached_embeddings_give_the_same_losses(model):
    from ullava.models.embedding_cache import EmbeddingCache
    model.train()
    batch = res_batch(model, seed=1)
    data = model.data_preprocessor(batch, True)
    caches = {model.mask_head: EmbeddingCache(), model.vision_tower: EmbeddingCache()}
    with torch.no_grad():
        full = model(**data, mode='loss')
        with embedding_caches(model, caches, check=False):
            model(**data, mode='loss')  # fills the caches
        with embedding_caches(model, caches, check=True):
            cached = model(**data, mode='loss')
            with pytest.raises(RuntimeError, match='cached encoder ran'):
                model.mask_head.image_encoder(data['inputs']['sam_images'])
    assert full.keys() == cached.keys()
    for k in full:
        torch.testing.assert_close(cached[k], full[k], rtol=0, atol=0)
    assert caches[model.mask_head].hits == 2 and caches[model.vision_tower].hits == 2
    assert model.mask_head.embedding_cache is None  # the model is given back uncached
