# The embedded default: the tiny u-LLaVA trained on the procedural shapes world
# (python -m ullava.demo.world data/demo_world), every task through its real-format loader.
_base_ = ['../_base_/models/ullava_tiny.py', '../_base_/schedules/adamw_cosine_iters.py',
          '../_base_/default_runtime.py']

data_root = '{{$ULLAVA_DEMO_DATA:data/demo_world}}/'
image_token_len = {{_base_.image_token_len}}
video_token_len = {{_base_.video_token_len}}
tokenizer = dict(tiny=True)
classes = 'train/semantic_classes.json'
# RES objects per training sample (RefCOCODataset's refs_per_sample); 1 = the reference's one.
# ULLAVA_DEMO_RES_REFS=3 asks about 3 objects of an image per sample (measured in docs/benchmarks.md).
res_refs_per_sample = int('{{$ULLAVA_DEMO_RES_REFS:1}}')

pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadVideo', num_frames={{_base_.num_frames}}),
    dict(type='LoadMasks'),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}),
    dict(type='ResizeForSAM', size={{_base_.sam_size}}),
    dict(type='TokenizeConversation', tokenizer=tokenizer, template='conv_sep2',
         image_token_len=image_token_len, video_token_len=video_token_len),
    dict(type='PackULLaVAInputs'),
]


def split(kind, split_name, **kwargs):
    """One dataset of the world: ``kind`` -> (dataset type, annotation file, task)."""
    table = dict(
        res=('RefCOCODataset', f'{split_name}/refcoco_{split_name}.json', 'res'),
        rec=('RefCOCODataset', f'{split_name}/refcoco_{split_name}.json', 'rec'),
        caption=('COCOCaptionDataset', f'{split_name}/captions_{split_name}.json', 'caption'),
        vqa=('VQAv2Dataset', f'{split_name}/vqa_{split_name}.json', 'vqa'),
        salient=('SalientDataset', f'{split_name}/salient_{split_name}.json', 'salient'),
        semseg=('SemanticSegDataset', f'{split_name}/semantic_{split_name}.json', 'semseg'),
        video=('LLaVADataset', f'{split_name}/tgif_{split_name}.json', 'video_caption'),
    )
    type_, ann, task = table[kind]
    extra = dict(class_names=classes, prompt_classes='all') if kind == 'semseg' else {}
    if kind == 'res' and split_name == 'train':
        extra = dict(refs_per_sample=res_refs_per_sample)
    return dict(type=type_, data_root=data_root, ann_file=ann, task=task, pipeline=pipeline,
                test_mode=split_name == 'val', **extra, **kwargs)


train_tasks = ['res', 'caption', 'vqa', 'salient', 'semseg', 'video']
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='MixtureDataset', datasets=[split(k, 'train') for k in train_tasks],
                 ratios=[3, 1, 2, 1, 2, 1], length=20000))

test_tasks = ['res', 'rec', 'caption', 'vqa', 'salient', 'semseg', 'video']
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='MixtureDataset', datasets=[split(k, 'val') for k in test_tasks]))
test_evaluator = [
    dict(type='TaskMetric', task='res', metric=dict(type='RESMetric')),
    dict(type='TaskMetric', task='rec', metric=dict(type='RECMetric')),
    dict(type='TaskMetric', task='caption', metric=dict(type='CaptionMetric')),
    dict(type='TaskMetric', task='video_caption', metric=dict(type='CaptionMetric')),
    dict(type='TaskMetric', task='vqa', metric=dict(type='VQAMetric')),
    dict(type='TaskMetric', task='salient', metric=dict(type='SalientMetric')),
    dict(type='TaskMetric', task='semseg', metric=dict(type='PromptSemSegMetric')),
]

max_iters = 3600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min_ratio=0.01),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
# The demo trains the (random-init) towers too: frozen random features carry little signal.
# Boxes come from the predicted masks: the [LOC] decoder needs the tiny LLM itself to localise,
# which it learns far more slowly than SAM's decoder segments (see docs/benchmarks.md).
model = dict(trainable=['.'], box_source='mask')
default_hooks = dict(checkpoint=dict(interval=500))
