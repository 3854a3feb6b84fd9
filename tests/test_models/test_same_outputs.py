"""Issue #13's guard: a converted reference-layout checkpoint gives the outputs it gave before the
heads became registered plugins (recorded in ``golden/reference_outputs.json`` by this file's
``record`` with the pre-#13 model, 126fc94..91ed8c3).

The checkpoint is the seeded reference-layout model of ``tests/test_tools/test_convert.py``,
converted by ``convert_checkpoint``; the outputs are its teacher-forced and generated predictions
(text, mask probabilities, boxes with every ``box_source``) and its losses.
"""
import json
from pathlib import Path

import torch

from test_tools.test_convert import ReferenceModel, seg_sample

GOLDEN = Path(__file__).parent / 'golden' / 'reference_outputs.json'
ORI = (40, 50)


def converted_model(tmp_path):
    from mmengine.config import Config

    from ullava.models.convert import convert_checkpoint
    from ullava.models.tiny_tokenizer import build_tiny_tokenizer
    from ullava.registry import MODELS
    from safetensors.torch import load_file
    root = Path(__file__).resolve().parents[2]
    cfg = Config.fromfile(str(root / 'configs/_base_/models/ullava_tiny.py'))
    cfg.model.projector = 'mlp'
    ref = ReferenceModel(cfg, len(build_tiny_tokenizer()), clip_infix=False)
    src, dst = tmp_path / 'pytorch_model.bin', tmp_path / 'ullava.safetensors'
    torch.save(ref.state_dict(), src)
    assert convert_checkpoint(src, dst).ok
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    model.load_state_dict(load_file(str(dst)), strict=True)
    return model


def set_box_source(model, source: str) -> None:
    model.box_source = source


def outputs(model) -> dict:
    inputs, ds = seg_sample(model, ORI)
    ds.gt_masks = torch.zeros(1, *ORI, dtype=torch.bool)
    ds.gt_masks[0, 8:30, 12:40] = True
    ds.gt_boxes_norm = torch.tensor([[0.2, 0.3, 0.8, 0.7]])
    out = {}
    data = model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), False)
    with torch.no_grad():
        for name, value in model(**data, mode='loss').items():
            out[f'loss/{name}'] = value.detach().clone()
    model.predict_protocol = 'teacher_forced'
    for source in ('head', 'fuse', 'mask'):
        set_box_source(model, source)
        inputs, ds = seg_sample(model, ORI)
        data = model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), False)
        pred = model(**data, mode='predict')[0]
        out[f'{source}/pred_boxes'] = pred.pred_boxes.clone()
        if source == 'fuse':
            out['pred_mask_scores'] = pred.pred_mask_scores.clone()
            out['pred_masks'] = pred.pred_masks.clone()
            out['pred_text'] = pred.pred_text
    model.predict_protocol = 'generate'
    inputs, ds = seg_sample(model, ORI)
    data = model.data_preprocessor(dict(inputs=[inputs], data_samples=[ds]), False)
    out['generate/pred_text'] = model(**data, mode='predict')[0].pred_text
    return out


def save_golden(out: dict, path: Path = GOLDEN) -> None:
    """Outputs as JSON text (tensors: dtype, shape, values; float32 round-trips exactly)."""
    def encode(v):
        if isinstance(v, str):
            return v
        return dict(dtype=str(v.dtype).removeprefix('torch.'), shape=list(v.shape),
                    values=v.flatten().tolist())
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({k: encode(v) for k, v in out.items()}, indent=0))


def load_golden(path: Path = GOLDEN) -> dict:
    def decode(v):
        if isinstance(v, str):
            return v
        return torch.tensor(v['values'], dtype=getattr(torch, v['dtype'])).reshape(v['shape'])
    return {k: decode(v) for k, v in json.loads(path.read_text()).items()}


def record(tmp_path) -> None:
    """Write the golden file (run once, with the pre-#13 model)."""
    save_golden(outputs(converted_model(tmp_path)))


def test_converted_reference_checkpoint_gives_the_recorded_outputs(tmp_path):
    golden = load_golden()
    now = outputs(converted_model(tmp_path))
    assert sorted(now) == sorted(golden)
    for key, value in golden.items():
        if isinstance(value, str):
            assert now[key] == value, key
        else:
            assert now[key].shape == value.shape, key
            assert torch.allclose(now[key].float(), value.float(), atol=1e-6), key
