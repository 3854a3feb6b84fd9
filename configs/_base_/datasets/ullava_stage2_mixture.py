# Stage II data: the mixture of u-LLaVA's README, each dataset with its own `portion` (the fraction
# used), concatenated as the reference does; conv_sep2 template, 512 tokens at most.
# It inherits the model because the pipeline tokenises with the model's tokenizer and must match
# its image token budget.
_base_ = ['../models/ullava_7b.py']

# Layout under data_root (set ULLAVA_DATA or edit; nothing is downloaded). Annotation files are
# u-LLaVA's re-packed JSONs and LLaVA's instruct JSON; each `data_prefix.img_path` is the folder
# that the records' image/label paths are relative to (the reference's `image_dir`).
data_root = '{{$ULLAVA_DATA:data/ullava}}/'
ann = 'annotations/'
max_length = 512
pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadVideo', num_frames={{_base_.num_frames}}),
    dict(type='LoadMasks'),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}),
    dict(type='ResizeForSAM', size={{_base_.sam_size}}),
    dict(type='TokenizeConversation', tokenizer={{_base_.tokenizer}}, template='conv_sep2',
         image_token_len={{_base_.image_token_len}}, video_token_len={{_base_.video_token_len}},
         max_length=max_length),
    dict(type='PackULLaVAInputs'),
]
common = dict(data_root=data_root, pipeline=pipeline, portion=1.0)
# Semantic label maps: label 0 ("other") and 255 are never prompted; pixels no prompted class
# claims are ignored (background_id=None), as the class lists hold no background class.
semseg = dict(type='SemanticSegDataset', task='semseg', ignore_ids=(0, 255), background_id=None,
              **common)
train_dataloader = dict(
    batch_size=16, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='MixtureDataset', datasets=[
        dict(type='LLaVADataset', task='vqa', ann_file=ann + 'llava_instruct_150k.json',
             data_prefix=dict(img_path='images/coco2017/train2017/'), **common),
        dict(type='RefCOCODataset', task='res', ann_file=ann + 'refcoco_train.json',
             data_prefix=dict(img_path='images/coco2014/'), **common),
        dict(type='RefCOCODataset', task='res', ann_file=ann + 'refcoco+_train.json',
             data_prefix=dict(img_path='images/coco2014/'), **common),
        dict(type='RefCOCODataset', task='res', ann_file=ann + 'refcocog_train.json',
             data_prefix=dict(img_path='images/coco2014/'), **common),
        dict(type='RefCOCODataset', task='res', ann_file=ann + 'refclef_train.json',
             data_prefix=dict(img_path='images/saiapr_tc-12/'), **common),
        dict(semseg, ann_file=ann + 'ade20k.json', class_names=ann + 'ade20k_classes.json',
             data_prefix=dict(img_path='images/ade20k/')),
        dict(semseg, ann_file=ann + 'cocostuff.json', class_names=ann + 'cocostuff_classes.json',
             data_prefix=dict(img_path='images/cocostuff/')),
        dict(semseg, ann_file=ann + 'pascal_part.json',
             class_names=ann + 'pascal_part_classes.json',
             data_prefix=dict(img_path='images/vlpart/pascal-part/')),
        dict(semseg, ann_file=ann + 'paco_lvis.json', class_names=ann + 'paco_lvis_classes.json',
             data_prefix=dict(img_path='images/vlpart/paco/')),
        dict(type='SalientDataset', task='salient', ann_file=ann + 'msra_10k.json',
             data_prefix=dict(img_path='images/salient/'), **common),
        dict(type='SalientDataset', task='salient', ann_file=ann + 'msra_b.json',
             data_prefix=dict(img_path='images/salient/'), **common),
    ]))
