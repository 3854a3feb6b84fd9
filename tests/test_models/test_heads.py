"""Heads as registered plugins (issue #13): built from ``HEADS``, one output per generated token
(the targets are never read at prediction), losses through the registry."""
import copy

import pytest
import torch

from ullava.registry import HEADS, MODELS
from ullava.utils import UserError

from .batch import make_sample


def predict(model, prompt, answer, **kw):
    model.eval()
    model.predict_protocol = 'teacher_forced'
    inputs, ds = make_sample(model, prompt, answer, image=True, **kw)
    return model(**model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), False),
                 mode='predict')[0]


def test_the_legacy_keys_build_the_registered_heads(tiny_model):
    assert list(tiny_model.heads) == ['mask_head', 'box_head']
    assert tiny_model.mask_head.tokens == ('[SEG]',) and tiny_model.box_head.tokens == ('[LOC]',)
    assert {'SAMMaskHead', 'BoxHead', 'GroundingHead'} <= set(HEADS.module_dict)


def test_heads_key_builds_the_same_model(tiny_cfg, tiny_model):
    cfg = copy.deepcopy(tiny_cfg.model)
    heads = dict(mask_head=dict(type='SAMMaskHead', token='[SEG]', **cfg.pop('mask_head')),
                 box_head=dict(type='BoxHead', token='[LOC]', box_source=cfg.pop('box_source'),
                               **cfg.pop('box_head')))
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg, heads=heads))
    a, b = model.state_dict(), tiny_model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('answer,masks', [('Sure. [SEG] and [SEG].', 2), ('Sure. [SEG].', 1),
                                          ('No such object.', 0)])
def test_prediction_gives_one_mask_per_token_whatever_the_targets(tiny_model, answer, masks):
    out = predict(tiny_model, '<image>\nSegment the squares.', answer, masks=1)
    assert out.pred_masks.shape == (masks, 40, 50)  # the one GT mask is never looked at
    assert out.pred_boxes.shape == (masks, 4)


def test_box_head_gives_one_box_per_loc(tiny_model):
    out = predict(tiny_model, '<image>\nLocate.', 'Sure. [SEG] [LOC] [LOC].', masks=0)
    assert out.pred_masks.shape[0] == 1 and out.pred_boxes.shape == (2, 4)
    assert out.pred_box_scores.shape == (2,)


def test_a_heads_token_missing_from_the_tokenizer_is_one_clear_error(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.box_head['token'] = '[BOX]'
    with pytest.raises(UserError, match=r'\[BOX\] is not in the tokenizer; add it to '
                                        r'tokenizer.extra_tokens'):
        MODELS.build(cfg)


def test_extra_tokens_come_after_the_reference_tokens(tiny_cfg):
    from ullava.models import build_tokenizer
    from ullava.models.tokens import ADDED_TOKENS
    plain = build_tokenizer(tiny=True)
    tok = build_tokenizer(tiny=True, extra_tokens=['[PT]', '[REJ]'])
    assert tok.convert_tokens_to_ids(ADDED_TOKENS) == plain.convert_tokens_to_ids(ADDED_TOKENS)
    assert tok.convert_tokens_to_ids(['[PT]', '[REJ]']) == [len(plain), len(plain) + 1]


def test_mmdet_dice_is_our_dice():
    """The registered MaskDiceLoss is mmdet's DiceLoss(naive_dice, eps=1): either may be named."""
    g = torch.Generator().manual_seed(0)
    logits, gt = torch.randn(3, 9, 7, generator=g), torch.rand(3, 9, 7, generator=g) > 0.5
    ours = MODELS.build(dict(type='MaskDiceLoss', loss_weight=0.5))
    theirs = MODELS.build(dict(type='mmdet.DiceLoss', use_sigmoid=True, naive_dice=True,
                               eps=1.0, loss_weight=0.5))
    assert torch.allclose(ours(logits, gt, reduction_override='none'),
                          theirs(logits, gt, reduction_override='none'), atol=1e-6)


def test_bf16_cast_keeps_sams_positional_matrix_in_fp32(tiny_model):
    head = tiny_model.mask_head.to(torch.bfloat16)
    assert head.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.dtype == torch.float32
    assert head.prompt_encoder.get_dense_pe().shape[1] == head.prompt_encoder.embed_dim


def test_a_model_without_heads_reads_none_for_the_old_names(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.update(mask_head=None, box_head=None, trainable=['^projector'])
    model = MODELS.build(cfg)
    assert model.heads == {} and model.mask_head is None and model.box_head is None
    with pytest.raises(AttributeError):
        model.no_such_attribute


def test_box_head_image_attention_reads_the_image_tokens(tiny_cfg):
    """ullava's variant: the [LOC] query attends over its sample's image-token states, so the
    box changes with the image tokens (and only with its own sample's), and trains."""
    from .batch import mixed_batch
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.box_head = dict(prompt_dim=64, image_attention=4)
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    data = model.data_preprocessor(mixed_batch(model), True)
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    assert model.box_head.image_attn.in_proj_weight.grad.abs().sum() > 0
    model.eval()
    head, inputs = model.box_head, data['inputs']
    hidden = model.hidden_states(inputs, inputs['input_ids'], inputs['attention_mask'])
    from ullava.models.heads.base import HeadBatch
    batch = HeadBatch(inputs, inputs['input_ids'], hidden.detach(), model.token_ids,
                      model.data_preprocessor)
    states, owner, _ = batch.prompts('[LOC]')
    before = head._boxes(batch, states, owner)
    from ullava.models.tokens import IMAGE_PATCH
    other = hidden.detach().clone()
    last = int(owner[-1])  # change the image tokens of the last prompt's sample only
    other[last][inputs['input_ids'][last] == model.token_ids[IMAGE_PATCH]] += 1.0
    after = head._boxes(HeadBatch(inputs, inputs['input_ids'], other, model.token_ids,
                                  model.data_preprocessor), states, owner)
    moved = (after - before).abs().sum(1) > 1e-6
    assert moved.tolist() == (owner == last).tolist()


def test_remove_islands_keeps_the_largest_region_and_the_box_follows():
    """``remove_islands``: None is the reference's mask (every pixel over 0.5); 'largest' keeps
    each mask's largest 8-connected region; N drops the regions under N pixels (the largest
    always stays); the tight box is taken after it."""
    from ullava.models.heads.mask_head import remove_islands
    from ullava.structures import boxes_from_masks
    masks = torch.zeros(3, 20, 30, dtype=torch.bool)
    masks[0, 2:8, 3:10] = True          # 42 px, the object
    masks[0, 15:17, 25:27] = True       # 4 px, a stray speck
    masks[0, 10:13, 0:3] = True         # 9 px
    masks[1, 0:2, 0:2] = True           # only small regions: the largest stays
    masks[1, 5, 5] = True
    assert torch.equal(remove_islands(masks, None), masks)
    largest = remove_islands(masks, 'largest')
    assert largest[0].sum() == 42 and largest[0, 2:8, 3:10].all()
    assert largest[1].sum() == 4 and not largest[2].any()  # an empty mask stays empty
    assert boxes_from_masks(largest)[0].tolist() == [3, 2, 10, 8]
    assert boxes_from_masks(masks)[0].tolist() == [0, 2, 27, 17]  # the speck widens the box
    some = remove_islands(masks, 5)
    assert some[0].sum() == 42 + 9 and some[1].sum() == 4
    diagonal = torch.zeros(1, 5, 5, dtype=torch.bool)
    diagonal[0, [0, 1, 2], [0, 1, 2]] = True  # 8-connected: one region
    assert torch.equal(remove_islands(diagonal, 'largest'), diagonal)


@pytest.mark.parametrize('key,bad', [('remove_islands', 'smallest'), ('remove_islands', 0),
                                     ('remove_islands', -3), ('remove_islands', 2.5),
                                     ('mask_box', 'largest')])
def test_mask_post_processing_rejects_other_values(tiny_cfg, key, bad):
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.mask_head[key] = bad
    with pytest.raises(UserError, match=key):
        MODELS.build(cfg)


@pytest.mark.parametrize('option,value', [('remove_islands', 'largest'),
                                          ('mask_box', 'largest_region')])
def test_mask_post_processing_reaches_the_predictions(tiny_model, option, value):
    """``remove_islands='largest'`` trims the mask, ``mask_box='largest_region'`` keeps it whole;
    both box the largest region, and the box head keeps that box (the answer has no [LOC])."""
    from ullava.models.heads.mask_head import remove_islands
    from ullava.structures import boxes_from_masks
    head = tiny_model.mask_head
    out = predict(tiny_model, '<image>\nSegment the squares.', 'Sure. [SEG].', masks=1)
    default = getattr(head, option)
    setattr(head, option, value)
    try:
        new = predict(tiny_model, '<image>\nSegment the squares.', 'Sure. [SEG].', masks=1)
    finally:
        setattr(head, option, default)
    largest = remove_islands(out.pred_masks, 'largest')
    assert torch.equal(new.pred_masks, largest if option == 'remove_islands' else out.pred_masks)
    assert torch.equal(new.pred_boxes, boxes_from_masks(largest))


def test_prompt_norm_standardises_the_seg_states_over_the_batch(tiny_cfg):
    """``prompt_norm='batch'``: in training the projector reads the [SEG] states standardised per
    feature over the batch (a common part removed), and the running statistics move; a lone
    prompt and inference use the running ones and change nothing; the default has no norm and
    a bad value is refused in one line."""
    assert MODELS.build(copy.deepcopy(tiny_cfg.model)).mask_head.prompt_norm is None
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.mask_head['prompt_norm'] = 'layer'
    with pytest.raises(UserError, match='prompt_norm'):
        MODELS.build(cfg)
    cfg.mask_head['prompt_norm'] = 'batch'
    head = MODELS.build(cfg).mask_head
    torch.manual_seed(0)
    hidden = head.prompt_norm.num_features
    common = 10 * torch.randn(hidden)
    states = common + 0.1 * torch.randn(6, hidden)  # six prompts, nearly the same state
    head.train()
    out = head.normalize_prompts(states)
    assert torch.allclose(out.mean(0), torch.zeros(hidden), atol=1e-4)
    assert torch.allclose(out.var(0, unbiased=False), torch.ones(hidden), atol=1e-2)
    moved = head.prompt_norm.running_mean.clone()
    assert not torch.equal(moved, torch.zeros(hidden))
    lone = head.normalize_prompts(states[:1])  # no batch statistics for one prompt
    assert torch.equal(head.prompt_norm.running_mean, moved)
    head.eval()
    assert torch.equal(head.normalize_prompts(states[:1]), lone)
    assert torch.equal(head.prompt_norm.running_mean, moved)
    assert not any(k.startswith('prompt_norm') for k, _ in head.named_parameters())
