"""Each reference convention that released weights depend on, pinned on small tensors
(docs/conventions.md; the digest's "Reference conventions that released weights depend on")."""
import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ullava.utils import UserError

from .batch import make_sample

# written out from the reference (models/ullava_core.py), not from ullava's own list
def record(seen: dict, key: str, what: str = 'output'):
    """A forward hook keeping the first input or output of a module (and changing nothing)."""
    def hook(module, args, out):
        seen.setdefault(key, args[0] if what == 'input' else out)
    return hook


REFERENCE_ORDER = ['[PAD]', '<image_patch>', '<video_patch>', '<img_beg>', '</img_end>',
                   '<vid_beg>', '</vid_end>', '[SEG]', '[LOC]', '[tag]', '[/tag]']


# ---------------------------------------------------------------------------- 1. token ids
def test_added_tokens_follow_the_base_vocabulary_in_the_reference_order():
    from ullava.models import build_tokenizer
    from ullava.models.tiny_tokenizer import build_tiny_tokenizer
    base = len(build_tiny_tokenizer())
    tok = build_tokenizer(tiny=True)
    assert len(tok) == base + 11
    assert tok.convert_tokens_to_ids(REFERENCE_ORDER) == list(range(base, base + 11))
    # stage II pads with <unk> (id 0), as the reference; the [PAD] row is layout only
    assert tok.pad_token == '<unk>' and tok.pad_token_id == 0
    assert tok.encode('<image>', add_special_tokens=False) != [tok.convert_tokens_to_ids('<image>')]


# ---------------------------------------------------------------------------- 2. prompt state
def test_prompt_positions_before_and_at_the_token():
    from ullava.models.heads.prompts import prompt_positions
    seg = 7
    ids = torch.tensor([[5, 6, seg, 9, seg, 3], [seg, 1, 2, 3, 4, 5]])
    before = prompt_positions(ids, seg, 'before')
    assert before.nonzero().tolist() == [[0, 1], [0, 3]]  # a [SEG] at position 0 has no state before
    assert prompt_positions(ids, seg, 'token').nonzero().tolist() == [[0, 2], [0, 4], [1, 0]]


@pytest.mark.parametrize('state, shift', [('before', 1), ('token', 0)])
def test_heads_are_prompted_by_the_chosen_state(tiny_model, state, shift):
    tiny_model.eval()
    tiny_model.predict_protocol = 'teacher_forced'
    tiny_model.mask_head.prompt_state = tiny_model.box_head.prompt_state = state
    inputs, ds = make_sample(tiny_model, '<image>\nLocate it.', 'Sure. Mask: [SEG]; Location: [LOC].',
                             image=True, masks=1)
    seen = {}
    tiny_model.mask_head.seg_projector.register_forward_hook(record(seen, 'seg', 'input'))
    tiny_model.box_head.det_projector.register_forward_hook(record(seen, 'loc', 'input'))
    data = tiny_model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), False)
    tiny_model(**data, mode='predict')
    ids = data['inputs']['input_ids']
    hidden = tiny_model.hidden_states(data['inputs'], ids, data['inputs']['attention_mask'])
    for key, token in (('seg', '[SEG]'), ('loc', '[LOC]')):
        pos = int((ids[0] == tiny_model.token_ids[token]).nonzero()[0]) - shift
        assert torch.allclose(seen[key], hidden[0, pos][None], atol=1e-6), key


# ---------------------------------------------------------------------------- 3. SAM padding
@pytest.mark.parametrize('sam_pad', ['after_norm', 'before_norm'])
def test_sam_input_is_normalised_then_zero_padded(sam_pad):
    from ullava.models import ULLaVADataPreprocessor
    from ullava.structures import ULLaVADataSample
    pre = ULLaVADataPreprocessor(sam_pad=sam_pad)
    image = torch.zeros(3, 16, 16, dtype=torch.uint8)
    image[:, :10, :12] = 200  # the resized part; the rest is the uint8 zero pad
    ds = ULLaVADataSample(metainfo=dict(sam_resized_shape=(10, 12), ori_shape=(20, 24)))
    out = pre(dict(inputs=[dict(input_ids=torch.tensor([1, 2]), labels=torch.tensor([1, 2]),
                                prompt_len=1, sam_image=image)], data_samples=[ds]))
    sam = out['inputs']['sam_images'][0]
    inside = (200 / 255 - pre.sam_mean) / pre.sam_std
    assert torch.allclose(sam[:, :10, :12], inside.expand(3, 10, 12))
    pad = torch.zeros(3, 1, 1) if sam_pad == 'after_norm' else -pre.sam_mean / pre.sam_std
    assert torch.allclose(sam[:, 10:, :], pad.expand(3, 6, 16))
    assert torch.allclose(sam[:, :, 12:], pad.expand(3, 16, 4))


def test_sam_resize_is_segment_anythings_resize_longest_side():
    from segment_anything.utils.transforms import ResizeLongestSide

    from ullava.datasets.transforms import ResizeForSAM
    img = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    out = ResizeForSAM(64).transform(dict(img=img))
    assert out['sam_resized_shape'] == (48, 64)
    expected = ResizeLongestSide(64).apply_image(img).transpose(2, 0, 1)
    assert np.array_equal(out['sam_img'][:, :48, :64], expected)


# ---------------------------------------------------------------------------- 4. CLIP input
def test_clip_input_is_padded_white_then_clips_own_processor():
    from PIL import Image
    from transformers import CLIPImageProcessor

    from ullava.datasets.transforms import ResizeForCLIP
    from ullava.models.data_preprocessor import CLIP_MEAN, CLIP_STD
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)
    ours = ResizeForCLIP(size=32).transform(dict(img=img))['clip_img']
    assert ours.shape == (3, 32, 32) and ours.dtype == np.uint8
    # the reference: PIL pad (white, centred), then CLIPImageProcessor.preprocess
    square = Image.new('RGB', (50, 50), (255, 255, 255))
    square.paste(Image.fromarray(img), (0, (50 - 30) // 2))
    processor = CLIPImageProcessor(size={'shortest_edge': 32}, crop_size={'height': 32, 'width': 32})
    reference = processor.preprocess(square, return_tensors='pt')['pixel_values'][0]
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    assert torch.allclose((torch.from_numpy(ours).float() / 255 - mean) / std, reference,
                          atol=1e-5)
    assert (ours[:, 0] == 255).all()  # the top band is white padding


def test_clip_processor_is_read_from_a_clip_folder(tmp_path):
    from transformers import CLIPImageProcessor

    from ullava.datasets.transforms import ResizeForCLIP
    from ullava.datasets.transforms.resize import CLIP_PAD_MEAN
    CLIPImageProcessor(size={'shortest_edge': 24},
                       crop_size={'height': 24, 'width': 24}).save_pretrained(str(tmp_path))
    img = np.zeros((10, 20, 3), np.uint8)
    out = ResizeForCLIP(size=224, processor=str(tmp_path), pad_value=CLIP_PAD_MEAN) \
        .transform(dict(img=img))['clip_img']
    assert out.shape == (3, 24, 24)  # the folder's size, not `size`
    assert tuple(out[:, 0, 0]) == CLIP_PAD_MEAN
    (tmp_path / 'preprocessor_config.json').unlink()
    with pytest.raises(UserError, match='has no preprocessor_config.json'):
        ResizeForCLIP(processor=str(tmp_path))


# ---------------------------------------------------------------------------- 5. box frame
def test_boxes_are_normalised_in_the_centre_padded_square():
    from ullava.structures import denormalize_boxes, normalize_boxes
    box = torch.tensor([[0., 0., 640., 480.], [100., 50., 200., 150.]])
    norm = normalize_boxes(box, (480, 640))  # h=480: 80 px of padding above and below
    assert torch.allclose(norm, torch.tensor([[0., 80 / 640, 1., 560 / 640],
                                              [100 / 640, 130 / 640, 200 / 640, 230 / 640]]))
    assert torch.allclose(denormalize_boxes(norm, (480, 640)), box)
    tall = normalize_boxes(np.array([[0., 0., 30., 60.]]), (60, 30))  # numpy, portrait
    assert np.allclose(tall, [[0.25, 0., 0.75, 1.]])


def test_resize_for_sam_writes_centre_frame_boxes():
    from ullava.datasets.transforms import ResizeForSAM
    out = ResizeForSAM(64).transform(dict(img=np.zeros((480, 640, 3), np.uint8),
                                          gt_boxes=np.array([[0., 0., 640., 480.]])))
    assert np.allclose(out['gt_boxes_norm'], [[0., 0.125, 1., 0.875]])


def test_box_head_output_is_unconstrained_xyxy_by_default():
    from ullava.models.heads import BoxHead
    torch.manual_seed(0)
    head = BoxHead(8, prompt_dim=8)
    with torch.no_grad():
        head.det_decoder[-1].bias.copy_(torch.tensor([-0.5, 2.0, -1.0, 3.0]))
    states = torch.randn(3, 8)
    raw = head.det_decoder(head.det_projector(states))
    assert torch.equal(head(states), raw)  # no sigmoid, corners as predicted
    assert (head(states) < 0).any()
    head.output = 'sigmoid_cxcywh'
    boxes = head(states)
    assert ((boxes >= 0) & (boxes <= 1)).all() and (boxes[:, 2:] >= boxes[:, :2]).all()
    with pytest.raises(UserError, match='box_head.output'):
        BoxHead(8, output='cxcywh')


def test_predicted_head_boxes_come_back_in_original_pixels(tiny_model):
    tiny_model.eval()
    tiny_model.predict_protocol = 'teacher_forced'
    tiny_model.box_source = 'head'
    inputs, ds = make_sample(tiny_model, '<image>\nLocate it.', 'Sure. Mask: [SEG]; Location: [LOC].',
                             image=True, masks=1, ori=(40, 50))
    seen = {}
    tiny_model.box_head.register_forward_hook(record(seen, 'box'))
    out = tiny_model(**tiny_model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds])),
                     mode='predict')
    x0, y0, x1, y1 = seen['box'][0].tolist()
    pad_y = (50 - 40) / 2  # the short side (height) is padded on both sides
    expected = torch.tensor([x0 * 50, y0 * 50 - pad_y, x1 * 50, y1 * 50 - pad_y])
    assert torch.allclose(out[0].pred_boxes[0], expected, atol=1e-5)


def test_giou_loss_skips_unordered_boxes_but_counts_them():
    from torchvision.ops import generalized_box_iou_loss

    from ullava.models.losses import box_giou_loss
    pred = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.2, 0.2]])  # the second is unordered
    target = torch.tensor([[0.2, 0.2, 0.6, 0.6], [0.1, 0.1, 0.3, 0.3]])
    one = generalized_box_iou_loss(pred[:1], target[:1], reduction='sum')
    assert torch.allclose(box_giou_loss(pred, target), one / 2)


# ---------------------------------------------------------------------------- 6. mask loss frame
@pytest.mark.parametrize('frame', ['original', 'sam'])
def test_mask_loss_is_computed_in_the_chosen_frame(tiny_model, frame):
    tiny_model.mask_head.loss_frame = frame
    inputs, ds = make_sample(tiny_model, '<image>\nSegment it.', 'Sure. Mask: [SEG].', image=True,
                             masks=1, ori=(40, 50))
    seen = {}
    tiny_model.mask_head.register_forward_hook(record(seen, 'sam'))
    data = tiny_model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), True)
    losses = tiny_model(**data, mode='loss')
    logits = seen['sam']  # [1,S,S] in the SAM frame
    if frame == 'original':  # the reference: upsampled, cropped to the resized part, resized
        rh, rw = ds.metainfo['sam_resized_shape']
        logits = F.interpolate(logits[:, None, :rh, :rw], (40, 50), mode='bilinear',
                               align_corners=False)[:, 0]
        gt = ds.gt_masks.float()
    else:
        gt = ds.gt_masks_sam.float()
    expected = F.binary_cross_entropy_with_logits(logits, gt)
    assert torch.allclose(losses['loss_mask_bce'], 2.0 * expected, atol=1e-6)


def test_unknown_loss_frame_is_refused():
    from ullava.models.heads import SAMMaskHead
    with pytest.raises(UserError, match='loss_frame'):
        SAMMaskHead(8, encoder=dict(embed_dim=16, depth=1, num_heads=2), image_size=32,
                    patch_size=8, prompt_dim=16, loss_frame='padded')


# ---------------------------------------------------------------------------- 7. projector
def test_projector_names_follow_the_reference():
    from ullava.models.projector import build_projector
    assert isinstance(build_projector('mlp', 4, 6), nn.Linear)  # the reference's 'mlp'
    assert isinstance(build_projector('linear', 4, 6), nn.Linear)
    two = build_projector('mlp2x', 4, 6)
    assert set(two.state_dict()) == {'0.weight', '0.bias', '2.weight', '2.bias'}
    assert isinstance(two[1], nn.GELU)
    with pytest.raises(UserError, match="'mlp2x'"):
        build_projector('mlp1x', 4, 6)


# ---------------------------------------------------------------------------- 9. SAM variant
SMALL = dict(image_size=64, patch_size=8, prompt_dim=32, decoder=dict(depth=1, mlp_dim=32,
                                                                     num_heads=2))


def _sam_file(tmp_path, encoder):
    from ullava.models.heads import SAMMaskHead
    torch.manual_seed(0)
    head = SAMMaskHead(16, encoder=encoder, **SMALL)
    state = {k: v for k, v in head.state_dict().items() if not k.startswith('seg_projector.')}
    torch.save(state, tmp_path / 'sam_small.pth')
    return head, tmp_path / 'sam_small.pth'


def test_sam_encoder_size_is_read_from_the_checkpoint(tmp_path):
    from ullava.models.heads import SAMMaskHead
    encoder = dict(embed_dim=48, depth=3, num_heads=3, window_size=2, global_attn_indexes=(1,))
    saved, path = _sam_file(tmp_path, encoder)
    loaded = SAMMaskHead(16, checkpoint=str(path), **SMALL)  # no encoder given
    blocks = loaded.image_encoder.blocks
    assert len(blocks) == 3 and [b.window_size for b in blocks] == [2, 0, 2]
    assert blocks[0].attn.num_heads == 3
    own = saved.state_dict()
    for key, value in loaded.state_dict().items():
        if not key.startswith('seg_projector.'):
            assert torch.equal(value, own[key]), key


@pytest.mark.parametrize('preset', ['vit_b', 'vit_l', 'vit_h'])
def test_released_sam_sizes_are_recognised_from_their_shapes(preset):
    from ullava.models.heads.mask_head import SAM_PRESETS, SAMMaskHead, sam_encoder_from_shapes
    with torch.device('meta'):
        head = SAMMaskHead(8, encoder=preset)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert sam_encoder_from_shapes(shapes) == dict(SAM_PRESETS[preset], window_size=14,
                                                   mlp_ratio=4.0)


def test_a_checkpoint_without_a_vit_encoder_needs_an_explicit_encoder():
    from ullava.models.heads.mask_head import sam_encoder_from_shapes
    with pytest.raises(UserError, match='set mask_head.encoder'):
        sam_encoder_from_shapes({'image_encoder.neck.0.weight': (8, 8, 1, 1)}, 'mobile_sam.pth')


def test_weightless_config_reads_the_sam_size_from_shapes_only(tmp_path):
    from ullava.models.convert import weightless_model_cfg
    _, path = _sam_file(tmp_path, dict(embed_dim=48, depth=2, num_heads=3, window_size=0))
    cfg = weightless_model_cfg(dict(type='ULLaVA', mask_head=dict(checkpoint=str(path), **SMALL)))
    assert 'checkpoint' not in cfg['mask_head']
    assert cfg['mask_head']['encoder'] == dict(embed_dim=48, depth=2, num_heads=3, window_size=0,
                                               global_attn_indexes=(0, 1), mlp_ratio=4.0)


# ---------------------------------------------------------------------------- 10. tokenizer
def _vicuna_style_folder(tmp_path):
    """A folder as Vicuna-7B v1.1's: a sentencepiece tokenizer.model, no tokenizer.json."""
    import sentencepiece as spm
    folder = tmp_path / 'vicuna-tiny'
    folder.mkdir()
    lines = ['Sure. Mask: the red circle in this image.', 'a chat between a curious human',
             'Can you segment and locate the blue square?'] * 20
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(folder / 'tok'),
                                   vocab_size=60, model_type='bpe', unk_id=0, bos_id=1, eos_id=2,
                                   pad_id=-1, minloglevel=2)
    (folder / 'tok.model').rename(folder / 'tokenizer.model')
    (folder / 'tokenizer_config.json').write_text(json.dumps(dict(
        tokenizer_class='LlamaTokenizer', bos_token='<s>', eos_token='</s>', unk_token='<unk>')))
    return folder


def test_a_sentencepiece_only_folder_loads(tmp_path):
    from ullava.models import build_tokenizer
    tok = build_tokenizer(path=str(_vicuna_style_folder(tmp_path)))
    assert tok.convert_tokens_to_ids(REFERENCE_ORDER) == list(range(60, 71))
    assert tok.pad_token_id == tok.unk_token_id == 0
    assert tok.decode(tok.encode('the red circle', add_special_tokens=False)) == 'the red circle'


@pytest.mark.parametrize('module, package', [('sentencepiece', 'sentencepiece'),
                                             ('google.protobuf', 'protobuf')])
def test_a_missing_tokenizer_package_is_one_line_naming_it(tmp_path, monkeypatch, module, package):
    from ullava.models import build_tokenizer
    folder = _vicuna_style_folder(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(UserError) as err:
        build_tokenizer(path=str(folder))
    message = str(err.value)
    assert '\n' not in message and f'pip install {package}' in message and str(folder) in message
