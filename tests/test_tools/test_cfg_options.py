"""--cfg-options as ullava.engine.launch merges it, and --amp under DeepSpeed (no GPU needed)."""
from pathlib import Path

import pytest

from ullava.engine.launch import apply_amp, load_config
from ullava.utils import UserError

ROOT = Path(__file__).resolve().parents[2]

# Shaped as the 7B configs are: paths from an environment variable through top-level variables
CONFIG = """
ckpt_dir = '{{$ULLAVA_TEST_CKPT_DIR:/weights}}'
llm_path = ckpt_dir + '/vicuna-7b-v1.1'
max_iters = 100
model = dict(type='ULLaVA', tokenizer=dict(path=llm_path), llm=dict(pretrained=llm_path),
             lora=None, generation=dict(max_new_tokens=8, top_k=5))
train_cfg = dict(max_iters=max_iters)
param_scheduler = [dict(type='LinearLR', begin=0, end=max_iters)]
"""


@pytest.fixture()
def config(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv('ULLAVA_TEST_CKPT_DIR', raising=False)
    path = tmp_path / 'cfg.py'
    path.write_text(CONFIG)
    return path


def test_new_keys_merge_as_mmengine_does(config):
    cfg = load_config(config, {'model.generation.temperature': 0.7,
                               'model.mask_head.encoder.depth': 2,
                               'custom_hooks': [dict(type='EmptyCacheHook')]})
    assert cfg.model.generation == dict(max_new_tokens=8, top_k=5, temperature=0.7)
    assert cfg.model.mask_head == dict(encoder=dict(depth=2))
    assert cfg.custom_hooks == [dict(type='EmptyCacheHook')]


def test_a_none_section_takes_keys(config):
    cfg = load_config(config, {'model.lora.r': 8, 'model.lora.lora_alpha': 16})
    assert cfg.model.lora == dict(r=8, lora_alpha=16)


def test_existing_keys_and_list_items_are_overridden(config):
    cfg = load_config(config, {'train_cfg.max_iters': 3, 'param_scheduler.0.end': 3})
    assert cfg.train_cfg.max_iters == 3 and cfg.param_scheduler[0].end == 3


@pytest.mark.parametrize('key, expected', [
    ('train_cfg.max_iter', "key 'max_iter' does not exist under train_cfg; did you mean "
                           "'train_cfg.max_iters'? (to add 'max_iter' as a new key, write "
                           "+train_cfg.max_iter=...)"),
    ('model.generation.top_p', "did you mean 'model.generation.top_k'?"),
    ('param_scheduler.1.end', "param_scheduler is a list of 1 items; '1' is not an index"),
    ('train_cfg.max_iters.x', "train_cfg.max_iters is int '100', it has no key 'x'"),
    ('work_dri', "'work_dri' is not a key the Runner or this tool reads; did you mean "
                 "'work_dir'?"),
])
def test_typos_are_caught(config, key, expected):
    with pytest.raises(UserError) as err:
        load_config(config, {key: 1})
    assert str(err.value).startswith(f'--cfg-options {key}: ') and expected in str(err.value)
    assert str(config) in str(err.value)


def test_plus_adds_a_key_close_to_an_existing_one(config):
    cfg = load_config(config, {'+model.generation.top_p': 0.9})
    assert cfg.model.generation.top_p == 0.9 and cfg.model.generation.top_k == 5


def test_a_substituted_variable_is_refused_naming_what_to_set(config):
    with pytest.raises(UserError) as err:
        load_config(config, {'llm_path': '/elsewhere/vicuna'})
    message = str(err.value)
    assert "'llm_path' is a variable of the config file" in message
    assert 'changes nothing' in message
    assert 'model.tokenizer.path, model.llm.pretrained' in message
    assert 'ULLAVA_TEST_CKPT_DIR' in message  # found through ckpt_dir, which llm_path reads
    assert '\n' not in message

    with pytest.raises(UserError) as err:
        load_config(config, {'max_iters': 10})
    assert 'train_cfg.max_iters, param_scheduler.0.end' in str(err.value)
    assert 'environment variable' not in str(err.value)


def test_the_env_variable_is_what_moves_the_paths(config, monkeypatch):
    monkeypatch.setenv('ULLAVA_TEST_CKPT_DIR', '/data/ckpt')
    cfg = load_config(config)
    assert cfg.model.llm.pretrained == cfg.model.tokenizer.path == '/data/ckpt/vicuna-7b-v1.1'


def test_demo_config_refuses_its_variables(demo_env):
    with pytest.raises(UserError, match=r"'data_root' is a variable .* \(ULLAVA_DEMO_DATA\)"):
        load_config(ROOT / 'configs/demo/ullava_tiny_demo.py', {'data_root': '/x/'})


# ---------------------------------------------------------------------------- --amp
def test_amp_on_a_plain_runner_uses_amp_optim_wrapper():
    from mmengine.config import Config
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW'))))
    assert 'AmpOptimWrapper' in apply_amp(cfg, bf16_supported=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


@pytest.mark.parametrize('bf16, expected', [
    (True, dict(bf16=dict(enabled=True))),
    (False, dict(fp16=dict(enabled=True, loss_scale=0, initial_scale_power=16))),
])
def test_amp_under_deepspeed_sets_the_strategy_and_keeps_its_optim_wrapper(bf16, expected):
    cfg = load_config(ROOT / 'configs/demo/ullava_tiny_demo_zero2.py')
    for name in ('bf16', 'fp16'):
        cfg.strategy.pop(name, None)
    before = cfg.optim_wrapper.to_dict()
    apply_amp(cfg, bf16_supported=bf16)
    assert cfg.optim_wrapper.to_dict() == before  # DeepSpeedOptimWrapper, untouched
    assert {k: cfg.strategy[k] for k in ('bf16', 'fp16') if k in cfg.strategy} == expected


def test_amp_keeps_a_deepspeed_precision_already_set():
    cfg = load_config(ROOT / 'configs/demo/ullava_tiny_demo_zero2.py')
    strategy = cfg.strategy.to_dict()
    assert 'already has bf16 on' in apply_amp(cfg, bf16_supported=False)
    assert cfg.strategy.to_dict() == strategy
    assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'


def test_amp_refuses_a_strategy_it_does_not_know():
    from mmengine.config import Config
    cfg = Config(dict(strategy=dict(type='FSDPStrategy'), optim_wrapper=dict(type='OptimWrapper')))
    with pytest.raises(UserError, match='FSDPStrategy'):
        apply_amp(cfg, bf16_supported=True)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
