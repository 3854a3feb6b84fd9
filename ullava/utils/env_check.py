"""Check that every dependency of the stack imports and works: ``python -m ullava.utils.env_check``."""
import importlib
import sys

MODULES = ['torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'mmseg', 'transformers', 'peft',
           'segment_anything', 'deepspeed', 'pycocotools', 'safetensors']


def check() -> dict:
    """Import each module and run one compiled mmcv op; return {module: version}."""
    versions = {}
    for name in MODULES:
        module = importlib.import_module(name)
        versions[name] = getattr(module, '__version__', 'n/a')
    import torch
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
    if keep.tolist() != [0]:
        raise RuntimeError(f'mmcv.ops.nms gave {keep.tolist()}, expected [0]')
    return versions


if __name__ == '__main__':
    for mod, ver in check().items():
        print(f'  {mod:18s} {ver}')
    print('all imports OK; mmcv compiled op nms OK')
    sys.exit(0)
