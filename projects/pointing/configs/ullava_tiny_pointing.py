# Pointing with the tiny u-LLaVA on the procedural shapes world: a plugin head with its own
# token ([PT]), loss, metric and drawing; no core file knows of it.
# Data: python -m ullava.demo.world data/demo_world
#       python -m projects.pointing.pointing.convert_world data/demo_world
_base_ = ['../../../configs/_base_/models/ullava_tiny.py',
          '../../../configs/_base_/schedules/adamw_cosine_iters.py',
          '../../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['projects.pointing.pointing'], allow_failed_imports=False)

data_root = '{{$ULLAVA_DEMO_DATA:data/demo_world}}/'
# one tokenizer dict for the model and the pipeline: both add [PT] after the reference's tokens
tokenizer = dict(tiny=True, extra_tokens=['[PT]'])
pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadMasks'),
    dict(type='PointTargets'),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}),
    dict(type='ResizeForSAM', size={{_base_.sam_size}}),
    dict(type='TokenizeConversation', tokenizer=tokenizer, template='conv_sep2',
         image_token_len={{_base_.image_token_len}}, video_token_len={{_base_.video_token_len}}),
    dict(type='PackULLaVAInputs'),
]

train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='PointingDataset', data_root=data_root,
                 ann_file='train/pointing_train.json', pipeline=pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='PointingDataset', data_root=data_root,
                 ann_file='val/pointing_val.json', pipeline=pipeline, test_mode=True))
test_evaluator = dict(type='PointingMetric')

max_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
model = dict(
    tokenizer=tokenizer,
    heads=dict(point_head=dict(type='PointHead', token='[PT]')),
    trainable=['^projector', '^llm', '^point_head'],
    predict_protocol='generate')
default_hooks = dict(checkpoint=dict(interval=500))
