"""u-LLaVA v1's detector path: mmdet's GroundingDINO (tiny dims, random weights) built from its
config, prompted with the answer's [tag]phrase[/tag], runs on CPU and gives the boxes."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from ullava.registry import MODELS

from .batch import make_sample

WORDS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', 'red', 'blue', 'circle', 'square',
         'the', 'a', 'star', 'triangle', 'green', 'yellow', 'of', 'left']


@pytest.fixture(scope='module')
def tiny_gdino(tmp_path_factory) -> dict:
    """GroundingDINO's Swin-T config made tiny, with a random 2-layer BERT in a local folder."""
    from transformers import BertConfig, BertModel, BertTokenizer
    import mmdet
    bert = tmp_path_factory.mktemp('bert')
    (bert / 'vocab.txt').write_text('\n'.join(WORDS) + '\n')
    BertTokenizer(str(bert / 'vocab.txt')).save_pretrained(str(bert))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64)).save_pretrained(str(bert))
    path = osp.join(osp.dirname(mmdet.__file__), '.mim/configs/grounding_dino',
                    'grounding_dino_swin-t_pretrain_obj365_goldg_cap4m.py')
    model = Config.fromfile(path).model
    model.backbone.update(embed_dims=24, depths=[1, 1, 1, 1], num_heads=[1, 2, 3, 6],
                          out_indices=(1, 2, 3), init_cfg=None)
    model.neck.in_channels = [48, 96, 192]
    model.language_model.update(type='HF5BertModel', name=str(bert))
    model.encoder.num_layers, model.decoder.num_layers, model.num_queries = 1, 2, 10
    model.test_cfg.max_per_img = 5  # <= queries x phrases (10 x 1)
    return model


def test_detector_alone_runs_a_forward_on_cpu(tiny_gdino):
    from ullava.models.heads.grounding import GroundingDetector, grounded_phrase
    det = GroundingDetector(copy.deepcopy(tiny_gdino))
    out = det([torch.randint(0, 255, (3, 64, 80), dtype=torch.uint8)], ['red circle'])[0]
    assert out['boxes'].shape == (5, 4) and torch.isfinite(out['boxes']).all()
    assert (out['scores'][:-1] >= out['scores'][1:]).all()  # best first
    assert grounded_phrase('Sure. Mask: [SEG]; [tag]red circle[/tag].', 'q') == 'red circle'
    assert grounded_phrase('no tag here', 'the question') == 'the question'


def test_box_source_detector_gives_boxes_inside_the_image(tiny_cfg, tiny_gdino):
    cfg = copy.deepcopy(tiny_cfg.model)
    cfg.update(detector=dict(model=copy.deepcopy(tiny_gdino)), box_source='detector',
               predict_protocol='teacher_forced')
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    assert not any(p.requires_grad for p in model.detector.parameters())
    inputs, ds = make_sample(model, '<image>\nLocate the red circle.',
                             'Sure. Mask: [SEG]; Location: [LOC]; [tag]red circle[/tag].',
                             image=True, masks=1, ori=(40, 50))
    out = model(**model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), False),
                mode='predict')[0]
    box = out.pred_boxes[0]
    assert out.pred_boxes.shape == (1, 4)
    assert 0 <= box[0] <= box[2] <= 50 + 1e-3 and 0 <= box[1] <= box[3] <= 40 + 1e-3
    assert out.pred_box_scores[0] > 0


def test_detector_without_checkpoint_reads_no_uninitialised_memory(tiny_gdino):
    """With torch's NaN fill of new tensors on, any parameter mmdet leaves to ``init_weights``
    (``level_embed``) would turn every box into NaN; with it off, into garbage now and then."""
    from ullava.models.heads.grounding import GroundingDetector
    assert torch.utils.deterministic.fill_uninitialized_memory  # the suite keeps torch's default
    torch.manual_seed(0)
    det = GroundingDetector(copy.deepcopy(tiny_gdino))
    assert all(torch.isfinite(p).all() for p in det.parameters())
    out = det([torch.randint(0, 255, (3, 64, 80), dtype=torch.uint8)], ['red circle'])[0]
    assert torch.isfinite(out['boxes']).all() and torch.isfinite(out['scores']).all()
