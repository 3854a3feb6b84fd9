"""Every dependency named by the design card imports, and a compiled mmcv op runs."""
from ullava.utils.env_check import MODULES, check


def test_stack_imports_and_mmcv_op_runs():
    versions = check()
    assert set(versions) == set(MODULES)
    assert versions['mmcv'] == '2.1.0'
    assert versions['mmengine'] == '0.10.7'


def test_mmcv_ops_have_cpu_kernels():
    import torch
    from mmcv.ops import batched_nms, roi_align
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]])
    dets, keep = batched_nms(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]),
                             dict(type='nms', iou_threshold=0.5))
    assert keep.tolist() == [0, 1]
    feat = torch.arange(16.).view(1, 1, 4, 4)
    out = roi_align(feat, torch.tensor([[0., 0., 0., 4., 4.]]), (2, 2), 1.0, 2, 'avg', True)
    assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all()
