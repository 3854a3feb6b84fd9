# Instance segmentation with the tiny u-LLaVA on the procedural shapes world, as an external plugin.
# Data: python -m ullava.demo.world data/demo_world
#       python -m projects.instance_seg.instance_seg.convert_world data/demo_world
_base_ = ['../../../configs/_base_/models/ullava_tiny.py',
          '../../../configs/_base_/schedules/adamw_cosine_iters.py',
          '../../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['projects.instance_seg.instance_seg'], allow_failed_imports=False)

data_root = '{{$ULLAVA_DEMO_DATA:data/demo_world}}/'
tokenizer = dict(tiny=True)
pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadMasks'),
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
    dataset=dict(type='InstanceSegDataset', data_root=data_root,
                 ann_file='train/instances_train.json', pipeline=pipeline))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='InstanceSegDataset', data_root=data_root,
                 ann_file='val/instances_val.json', pipeline=pipeline, test_mode=True))
test_evaluator = dict(type='InstanceSegMetric', ann_file=data_root + 'val/instances_val.json')

max_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
# The answer (how many instances, which categories) is given and its [SEG] states read in one
# pass, as the reference scores RES: the metric then measures the masks, not the counting.
# Set predict_protocol='generate' to score the model's own answers.
model = dict(trainable=['.'], predict_protocol='teacher_forced')
default_hooks = dict(checkpoint=dict(interval=500))
