# Salient object segmentation evaluation on an image/mask folder pair (DUTS-style:
# <img_dir>/<name>.jpg|png with <mask_dir>/<name>.png).
# It inherits the model because the pipeline tokenises with the model's tokenizer.
_base_ = ['../models/ullava_7b.py']

data_root = '{{$ULLAVA_DATA:data/ullava}}/'
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadMasks'),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}),
    dict(type='ResizeForSAM', size={{_base_.sam_size}}),
    dict(type='TokenizeConversation', tokenizer={{_base_.tokenizer}}, template='conv_sep2',
         image_token_len={{_base_.image_token_len}}, video_token_len={{_base_.video_token_len}}),
    dict(type='PackULLaVAInputs'),
]
test_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='SalientFolderDataset', task='salient', data_root=data_root,
                 img_dir='images/salient_test/images', mask_dir='images/salient_test/masks',
                 pipeline=test_pipeline, test_mode=True))
