# Generalized RES (gRefCOCO's format) with the tiny u-LLaVA on the procedural shapes world:
# expressions with several targets (one [SEG] each) or none ([REJ], as GSVA); no core file
# knows of it.
# Data: python -m ullava.demo.world data/demo_world
#       python -m projects.grefcoco.grefcoco.convert_world data/demo_world
_base_ = ['../../../configs/_base_/models/ullava_tiny.py',
          '../../../configs/_base_/schedules/adamw_cosine_iters.py',
          '../../../configs/_base_/default_runtime.py']
custom_imports = dict(imports=['projects.grefcoco.grefcoco'], allow_failed_imports=False)

data_root = '{{$ULLAVA_DEMO_DATA:data/demo_world}}/'
tokenizer = dict(tiny=True, extra_tokens=['[REJ]'])  # the model's and the pipeline's
pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadMasks'),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}),
    dict(type='ResizeForSAM', size={{_base_.sam_size}}),
    dict(type='TokenizeConversation', tokenizer=tokenizer, template='conv_sep2',
         image_token_len={{_base_.image_token_len}}, video_token_len={{_base_.video_token_len}}),
    dict(type='PackULLaVAInputs'),
]
dataset = dict(type='GRefCOCODataset', data_root=data_root, ann_file='grefcoco/grefs(unc).json',
               instances_file='grefcoco/instances.json', pipeline=pipeline)
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='ullava_collate'), dataset=dict(dataset, split='train'))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ullava_collate'), dataset=dict(dataset, split='val', test_mode=True))
test_evaluator = dict(type='GRESMetric')

max_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
model = dict(tokenizer=tokenizer, heads=dict(reject_head=dict(type='RejectHead')),
             trainable=['.'], predict_protocol='generate')
default_hooks = dict(checkpoint=dict(interval=500))
