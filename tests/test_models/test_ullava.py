"""The tiny u-LLaVA: losses, gradients, prediction, save/load, and clear errors."""
import copy

import pytest
import torch

from ullava.models import build_tokenizer, special_token_ids
from ullava.registry import MODELS
from ullava.utils import UserError

from .batch import make_sample, mixed_batch


def test_loss_on_mixed_batch_is_finite_and_complete(tiny_model):
    data = tiny_model.data_preprocessor(mixed_batch(tiny_model), True)
    losses = tiny_model(**data, mode='loss')
    assert set(losses) == {'loss_ce', 'loss_mask_bce', 'loss_mask_dice', 'loss_box_l1',
                           'loss_box_giou'}
    assert all(torch.isfinite(v) for v in losses.values())
    # the random box decoder's corners are unordered (unconstrained xyxy, as the reference's):
    # such boxes add no GIoU term, only L1
    assert all(v > 0 for k, v in losses.items() if k != 'loss_box_giou')
    assert losses['loss_box_giou'] >= 0


def test_gradients_reach_exactly_the_trainable_parameters(tiny_model):
    data = tiny_model.data_preprocessor(mixed_batch(tiny_model), True)
    sum(tiny_model(**data, mode='loss').values()).backward()
    params = dict(tiny_model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    with_grad = {n for n, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == trainable
    # stage II of the tiny config: the towers are frozen, the decoder and heads train
    assert not any(n.startswith(('vision_tower.', 'mask_head.image_encoder.')) for n in trainable)
    assert any(n.startswith('mask_head.mask_decoder.') for n in trainable)
    assert any(n.startswith('box_head.') for n in trainable)
    assert any(n.startswith('projector.') for n in trainable)


@pytest.mark.parametrize('protocol', ['generate', 'teacher_forced'])
def test_predict_gives_masks_at_original_size_and_matching_boxes(tiny_model, protocol):
    tiny_model.eval()
    tiny_model.predict_protocol = protocol
    tiny_model.box_source = 'mask'
    tiny_model.generation['max_new_tokens'] = 6
    batch = mixed_batch(tiny_model)
    out = tiny_model(**tiny_model.data_preprocessor(batch, False), mode='predict')
    for sample in out:
        h, w = sample.metainfo['ori_shape']
        assert isinstance(sample.pred_text, str)
        assert sample.pred_masks.shape[1:] == (h, w)
        assert sample.pred_mask_scores.shape == sample.pred_masks.shape
        for mask, box in zip(sample.pred_masks, sample.pred_boxes):
            if mask.any():
                ys, xs = torch.nonzero(mask, as_tuple=True)
                assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1,
                                        ys.max().item() + 1]
            else:
                assert box.abs().sum() == 0
    # with the answer given, the RES sample yields exactly its two masks
    if protocol == 'teacher_forced':
        assert out[2].pred_masks.shape == (2, 40, 50)
        assert out[2].pred_text.startswith('Sure. Mask: [SEG]')


def test_save_load_round_trip_gives_identical_outputs(tiny_cfg, tiny_model, tmp_path):
    from safetensors.torch import load_file, save_file
    tiny_model.eval()
    tiny_model.predict_protocol = 'teacher_forced'
    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    save_file(state, str(tmp_path / 'model.safetensors'))
    torch.manual_seed(123)  # a different random init, then the saved weights
    other = MODELS.build(copy.deepcopy(tiny_cfg.model)).eval()
    other.predict_protocol = 'teacher_forced'
    other.load_state_dict(load_file(str(tmp_path / 'model.safetensors')))
    batch = mixed_batch(tiny_model)
    a = tiny_model(**tiny_model.data_preprocessor(batch, False), mode='predict')
    b = other(**other.data_preprocessor(mixed_batch(other), False), mode='predict')
    for x, y in zip(a, b):
        assert torch.equal(x.pred_mask_scores, y.pred_mask_scores)
        assert torch.equal(x.pred_boxes, y.pred_boxes)
        assert x.pred_text == y.pred_text


def test_tokenizer_without_special_tokens_is_refused():
    from ullava.models.tiny_tokenizer import build_tiny_tokenizer
    with pytest.raises(UserError, match='lacks ullava special tokens'):
        special_token_ids(build_tiny_tokenizer())
    assert '[SEG]' in special_token_ids(build_tokenizer(tiny=True))


def test_more_placeholders_than_images_is_a_clear_error(tiny_model):
    inputs, ds = make_sample(tiny_model, '<image>\n<image>\nTwo images?', 'no', image=True)
    data = tiny_model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), True)
    with pytest.raises(UserError, match='more placeholders than images'):
        tiny_model(**data, mode='loss')


def test_wrong_channel_count_is_a_clear_error(tiny_model):
    images = torch.zeros(1, 4, 64, 64)
    with pytest.raises(UserError, match='4 channels'):
        tiny_model.vision_tower(images)


def test_mask_targets_must_match_seg_tokens(tiny_model):
    inputs, ds = make_sample(tiny_model, '<image>\nSegment it.', 'Sure. Mask: [SEG].', image=True,
                             masks=2)
    data = tiny_model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), True)
    with pytest.raises(UserError, match='1 \\[SEG\\] tokens but 2 targets'):
        tiny_model(**data, mode='loss')


def test_batch_without_seg_or_loc_still_touches_every_trainable_head(tiny_model):
    """A text-only batch must give the heads a (zero) loss, or DDP would wait for their grads."""
    inputs, ds = make_sample(tiny_model, 'Hello?', 'Hi.')
    data = tiny_model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), True)
    losses = tiny_model(**data, mode='loss')
    assert losses['loss_mask_bce'] == 0 and losses['loss_box_l1'] == 0
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in tiny_model.box_head.parameters())


def test_training_everything_still_gives_every_trainable_parameter_a_gradient(tiny_model):
    """With every module trainable (the demo), parts u-LLaVA never uses (CLIP layers after the
    selected one, SAM's multimask outputs) stay frozen, so DDP never waits for their grads."""
    tiny_model.set_trainable(['.'])
    data = tiny_model.data_preprocessor(mixed_batch(tiny_model), True)
    sum(tiny_model(**data, mode='loss').values()).backward()
    missing = [n for n, p in tiny_model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert any(n.startswith('vision_tower.') and p.requires_grad
               for n, p in tiny_model.named_parameters())


def test_seg_in_a_video_answer_gives_text_and_no_mask(tiny_model):
    """SAM needs an image: a video (or text-only) answer holding [SEG] keeps its text, no mask."""
    tiny_model.eval()
    tiny_model.predict_protocol = 'teacher_forced'
    inputs, ds = make_sample(tiny_model, '<video>\nSegment the square.', 'Sure. Mask: [SEG].',
                             video=True)
    out = tiny_model(**tiny_model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]),
                                                    False), mode='predict')
    assert out[0].pred_text == 'Sure. Mask: [SEG].'
    assert out[0].pred_masks.shape == (0, 40, 50)  # no padding: no SAM image, no mask
