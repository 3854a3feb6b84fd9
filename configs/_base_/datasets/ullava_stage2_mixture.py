# Stage II data: the mixture of u-LLaVA's README, each dataset with its own `portion` (the fraction
# used), concatenated as the reference does; conv_sep2 template, 512 tokens at most.
# It inherits the model because the pipeline tokenises with the model's tokenizer and must match
# its image token budget.
_base_ = ['../models/ullava_7b.py']

# Under ULLAVA_DATA_ROOT (../paths.py; the layout is in docs/datasets.md): the annotation files
# keep the reference's names (its configs/train/ullava.yaml) in annotations/, and each
# `data_prefix.img_path` is the folder of image_root that the records' image/label paths are
# relative to (the reference's `image_dir`). No class-list files: ADE20K, COCO-Stuff, PASCAL-Part
# and PACO-LVIS use the lists shipped in ullava/tasks/semseg/classes/ (`class_names` overrides).
data_root = {{_base_.data_root}}
ann = 'annotations/'
img = 'image_root/'
max_length = 512
pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadVideo', num_frames={{_base_.num_frames}}),
    dict(type='LoadMasks'),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}, processor={{_base_.clip_path}}),
    dict(type='ResizeForSAM', size={{_base_.sam_size}}),
    dict(type='TokenizeConversation', tokenizer={{_base_.tokenizer}}, template='conv_sep2',
         image_token_len={{_base_.image_token_len}}, video_token_len={{_base_.video_token_len}},
         max_length=max_length),
    dict(type='PackULLaVAInputs'),
]
common = dict(data_root=data_root, pipeline=pipeline, portion=1.0)
refer = dict(type='RefCOCODataset', task='res', **common)
train_dataloader = dict(
    batch_size=16, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='MixtureDataset', datasets=[
        dict(type='LLaVADataset', task='vqa', ann_file=ann + 'llava_instruct_150k.json',
             data_prefix=dict(img_path=img + 'coco2017/train2017/'), **common),
        dict(refer, ann_file=ann + 'refcoco_train.json',
             data_prefix=dict(img_path=img + 'coco2014/')),
        dict(refer, ann_file=ann + 'refcoco+_train.json',
             data_prefix=dict(img_path=img + 'coco2014/')),
        dict(refer, ann_file=ann + 'refcocog_train.json',
             data_prefix=dict(img_path=img + 'coco2014/')),
        dict(refer, ann_file=ann + 'refclef_train.json',
             data_prefix=dict(img_path=img + 'saiapr_tc-12/')),
        # label maps: ADE20K reduced (0 ignored, k -> k-1), COCO-Stuff's "-" classes ignored;
        # the reference's conversation: up to 3 classes a sample, one turn each ([SEG] + [LOC])
        dict(type='ADE20KDataset', task='semseg', ann_file=ann + 'ade20k.json',
             one_turn_per_class=True, max_prompts=3,
             data_prefix=dict(img_path=img + 'ade20k/'), **common),
        dict(type='COCOStuffDataset', task='semseg', ann_file=ann + 'cocostuff.json',
             one_turn_per_class=True, max_prompts=3, data_prefix=dict(img_path=img), **common),
        # object parts: polygons / RLE per class name, not label maps
        dict(type='PartSegDataset', task='partseg', ann_file=ann + 'pascal_part.json',
             class_names='pascal_part', data_prefix=dict(img_path=img + 'vlpart/'), **common),
        dict(type='PartSegDataset', task='partseg', ann_file=ann + 'paco_lvis.json',
             class_names='paco_lvis', data_prefix=dict(img_path=img + 'coco2017/'), **common),
        dict(type='SalientDataset', task='salient', ann_file=ann + 'MSRA-10K.json',
             data_prefix=dict(img_path=img), **common),
        dict(type='SalientDataset', task='salient', ann_file=ann + 'MSRA-B.json',
             data_prefix=dict(img_path=img), **common),
    ]))
