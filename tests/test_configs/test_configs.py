"""Every config loads, names only registered types, and the u-LLaVA-7B stage configs carry the
reference's training settings (the 7B model itself cannot be built here: no weights)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py')) + \
    sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'projects').glob('*/configs/*.py'))
UL = 'configs/ullava/'


def load(path: str) -> Config:
    return Config.fromfile(str(ROOT / path))


def registry_for(key: str, top: bool):
    """The registry that builds a dict found under ``key`` (None: not built from a registry);
    ``top``: a top-level key (``param_scheduler`` there, a hook's name inside default_hooks)."""
    import mmengine.runner  # noqa: F401  (registers LogProcessor, loops, hooks as a Runner does)
    from mmengine import registry as mm

    from ullava import registry as ul
    table = {'model': ul.MODELS, 'dataset': ul.DATASETS, 'datasets': ul.DATASETS,
             'pipeline': ul.TRANSFORMS, 'sampler': ul.DATA_SAMPLERS, 'collate_fn': ul.FUNCTIONS,
             'test_evaluator': ul.METRICS, 'val_evaluator': ul.METRICS, 'metric': ul.METRICS,
             'optim_wrapper': ul.OPTIM_WRAPPERS, 'optimizer': mm.OPTIMIZERS,
             'param_scheduler': ul.PARAM_SCHEDULERS, 'train_cfg': ul.LOOPS, 'test_cfg': ul.LOOPS,
             'val_cfg': ul.LOOPS, 'default_hooks': ul.HOOKS, 'custom_hooks': ul.HOOKS,
             'visualizer': ul.VISUALIZERS, 'vis_backends': ul.VISBACKENDS,
             'log_processor': mm.LOG_PROCESSORS, 'heads': ul.HEADS}
    nested = ('dataset', 'datasets', 'pipeline', 'sampler', 'collate_fn', 'metric', 'optimizer',
              'vis_backends', 'heads')
    return table.get(key) if top or key in nested else None


def typed_dicts(node, key: str = '', registry=None):
    """Yield (registry, type name, path) for every dict with a ``type`` under ``node``; the
    registry is chosen by the nearest enclosing key (``pipeline`` -> TRANSFORMS, ...)."""
    # `is None`, not `or`: a Registry with nothing imported yet has len 0, i.e. is falsy
    def pick(k: str):
        found = registry_for(k, top=not key)
        return registry if found is None else found

    if isinstance(node, dict):
        if isinstance(node.get('type'), str) and registry is not None:
            yield registry, node['type'], key
        for k, v in node.items():
            yield from typed_dicts(v, f'{key}.{k}' if key else k, pick(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from typed_dicts(v, f'{key}[{i}]', registry)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_loads_and_types_are_registered(path):
    from mmengine.registry import init_default_scope
    cfg = load(path)
    init_default_scope(cfg.get('default_scope', 'ullava'))
    found = list(typed_dicts(cfg.to_dict()))
    if 'model' in cfg:
        assert any(t == 'ULLaVA' for _, t, _ in found)
    for registry, type_name, where in found:
        assert registry.get(type_name) is not None, f'{path}: {where}.type={type_name!r} ' \
                                                    f'is not in {registry.name}'


def _tokenize_steps(cfg: Config, loader: str = 'train_dataloader') -> list[dict]:
    steps = []

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') == 'TokenizeConversation':
                steps.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)
    walk(cfg[loader])
    assert steps, f'no TokenizeConversation in {loader}'
    return steps


def _datasets(cfg: Config) -> list[dict]:
    dataset = cfg.train_dataloader.dataset
    return dataset.datasets if dataset.type == 'MixtureDataset' else [dataset]


def _lr_curve(cfg: Config, epoch_length: int = 100) -> list[float]:
    """The learning rate at every iteration, the config's schedulers built as the Runner does."""
    from ullava.registry import PARAM_SCHEDULERS
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=opt,
                                                                    epoch_length=epoch_length))
                  for s in cfg.param_scheduler]
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs * epoch_length):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()  # (no gradient: a no-op that keeps torch's step-order check quiet)
        for s in schedulers:
            s.step()
    return lrs


STAGES = {  # the reference's settings: template, max length, lr, batch/GPU, epochs, trainable
    'ullava_7b_stage1_cc3m_tgif.py': ('conv_simple', 1024, 2e-3, 48, 1, ['^projector']),
    'ullava_7b_stage2.py': ('conv_sep2', 512, 2e-5, 16, 5,
                            ['^projector', '^llm', r'^mask_head\.(mask_decoder|seg_projector)',
                             '^box_head']),
    'ullava_7b_stage2_lora.py': ('conv_sep2', 512, 2e-4, 32, 5, None),
}


@pytest.mark.parametrize('name', sorted(STAGES))
def test_stage_settings_are_the_reference(name):
    template, max_length, lr, batch, epochs, trainable = STAGES[name]
    cfg = load(UL + name)
    for step in _tokenize_steps(cfg):
        assert step.template == template and step.max_length == max_length
        assert step.image_token_len == 256 and step.video_token_len == 264
    assert cfg.optim_wrapper.optimizer.lr == lr
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == epochs
    if trainable is not None:
        assert cfg.model.trainable == trainable
    assert cfg.model.llm.pretrained and cfg.model.vision_tower.pretrained  # the 7B base
    # warm-up over the first 3 % of all iterations to the peak lr, then cosine down to ~0
    lrs = _lr_curve(cfg)
    warmup = int(0.03 * len(lrs))
    assert lrs[0] < lr * 0.01 and max(lrs) == pytest.approx(lr)
    assert warmup - 1 <= lrs.index(max(lrs)) <= warmup  # LinearLR peaks on its last step
    assert lrs[-1] < lr * 0.01
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))
    assert all(d.get('portion') == 1.0 for d in _datasets(cfg))


def test_stage1_data_and_heads():
    cfg = load(UL + 'ullava_7b_stage1_cc3m_tgif.py')
    assert [d.ann_file for d in _datasets(cfg)] == ['annotations/chat.json',
                                                    'annotations/tgif_llava.json']
    assert cfg.model.mask_head is None and cfg.model.box_head is None


def test_stage2_mixture_is_the_readme_list():
    cfg = load(UL + 'ullava_7b_stage2.py')
    files = [Path(d.ann_file).stem for d in _datasets(cfg)]
    assert files == ['llava_instruct_150k', 'refcoco_train', 'refcoco+_train', 'refcocog_train',
                     'refclef_train', 'ade20k', 'cocostuff', 'pascal_part', 'paco_lvis',
                     'MSRA-10K', 'MSRA-B']  # the reference's names (its configs/train/ullava.yaml)
    for d in _datasets(cfg):  # one data_root: annotations/ and the reference's image_root/
        assert d.data_root == cfg.data_root and d.ann_file.startswith('annotations/')
        assert d.data_prefix.img_path.startswith('image_root/')
        assert 'class_names' not in d or d.class_names in ('pascal_part', 'paco_lvis')


def test_lora_settings_and_patterns():
    cfg = load(UL + 'ullava_7b_stage2_lora.py')
    assert cfg.model.lora == dict(r=8, lora_alpha=16, lora_dropout=0.05,
                                  target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj'])
    patterns = [re.compile(p) for p in cfg.model.trainable]
    trains = lambda name: any(p.search(name) for p in patterns)  # noqa: E731
    body = 'llm.base_model.model.model.layers.0.'  # names of a peft-wrapped LLaMA
    assert trains(body + 'self_attn.q_proj.lora_A.default.weight')
    assert trains(body + 'self_attn.o_proj.lora_B.default.weight')
    assert trains('llm.base_model.model.model.embed_tokens.weight')
    assert trains('llm.base_model.model.lm_head.weight')
    assert trains('mask_head.mask_decoder.iou_token.weight') and trains('box_head.mlp.0.weight')
    assert trains('projector.0.weight')
    for frozen in (body + 'self_attn.q_proj.base_layer.weight', body + 'mlp.up_proj.weight',
                   'vision_tower.clip.vision_model.embeddings.patch_embedding.weight',
                   'mask_head.image_encoder.blocks.0.attn.qkv.weight'):
        assert not trains(frozen), frozen


EVAL = sorted(p.name for p in (ROOT / UL / 'eval').glob('*.py'))
EVAL_TASKS = {'res': ('RESMetric', 'teacher_forced'), 'rec': ('RECMetric', 'teacher_forced'),
              'semseg': ('PromptSemSegMetric', 'teacher_forced'),
              'salient': ('SalientMetric', 'teacher_forced'),
              'caption': ('CaptionMetric', 'generate'), 'vqa': ('VQAMetric', 'generate')}


@pytest.mark.parametrize('name', EVAL)
def test_eval_configs(name):
    cfg = load(UL + 'eval/' + name)
    dataset = cfg.test_dataloader.dataset
    metric, protocol = EVAL_TASKS[dataset.task]
    assert cfg.test_evaluator.type == metric and cfg.model.predict_protocol == protocol
    assert dataset.test_mode and cfg.test_cfg.type == 'TestLoop'
    assert cfg.get('train_dataloader') is None and cfg.get('optim_wrapper') is None
    for step in _tokenize_steps(cfg, 'test_dataloader'):
        assert step.template == 'conv_sep2' and step.get('max_length') is None


def test_refer_eval_covers_every_split_the_paper_reports():
    splits = ['refcoco_val', 'refcoco_testA', 'refcoco_testB', 'refcoco+_val', 'refcoco+_testA',
              'refcoco+_testB', 'refcocog_val', 'refcocog_test']
    for task in ('res', 'rec'):
        for split in splits:
            cfg = load(f'{UL}eval/ullava_7b_{task}_{split}.py')
            assert cfg.test_dataloader.dataset.task == task
            assert cfg.test_dataloader.dataset.ann_file == f'annotations/{split}.json'


SEVEN_B = [p for p in CONFIGS if p.startswith(UL)]


@pytest.mark.parametrize('path', SEVEN_B)
def test_weights_and_data_come_from_two_environment_variables(path, monkeypatch):
    """ULLAVA_CKPT_DIR / ULLAVA_DATA_ROOT reach the model and every pipeline and dataset."""
    monkeypatch.setenv('ULLAVA_CKPT_DIR', '/weights')
    monkeypatch.setenv('ULLAVA_DATA_ROOT', '/data')
    cfg = load(path)
    assert cfg.model.llm.pretrained == cfg.model.tokenizer.path == '/weights/vicuna-7b-v1.1'
    assert cfg.model.vision_tower.pretrained == '/weights/clip-vit-large-patch14'
    if cfg.model.mask_head is not None:
        assert cfg.model.mask_head.checkpoint == '/weights/sam_vit_h_4b8939.pth'
    loader = 'train_dataloader' if cfg.get('train_dataloader') else 'test_dataloader'
    for step in _tokenize_steps(cfg, loader):
        assert step.tokenizer.path == '/weights/vicuna-7b-v1.1'
    dataset = cfg[loader].dataset
    for d in dataset.datasets if dataset.type == 'MixtureDataset' else [dataset]:
        assert d.data_root == '/data/'
