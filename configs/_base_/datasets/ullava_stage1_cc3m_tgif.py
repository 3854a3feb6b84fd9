# Stage I data: LLaVA's CC3M-595K chat.json (images) and u-LLaVA's TGIF captions (GIFs), both in
# LLaVA's conversation format, with the conv_simple template and 1024 tokens at most.
# It inherits the model because the pipeline tokenises with the model's tokenizer and must match
# its image/video token budget.
_base_ = ['../models/ullava_7b.py']

# Layout under data_root (set ULLAVA_DATA or edit; nothing is downloaded):
#   annotations/chat.json                          LLaVA-CC3M-Pretrain-595K
#   annotations/tgif.json                          u-LLaVA's TGIF conversations
#   images/LLaVA-CC3M-Pretrain-595K/images/...     what chat.json's "image" is relative to
#   images/tgif/...                                what tgif.json's "video" is relative to
data_root = '{{$ULLAVA_DATA:data/ullava}}/'
max_length = 1024
pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadVideo', num_frames={{_base_.num_frames}}),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}),
    dict(type='TokenizeConversation', tokenizer={{_base_.tokenizer}}, template='conv_simple',
         image_token_len={{_base_.image_token_len}}, video_token_len={{_base_.video_token_len}},
         max_length=max_length),
    dict(type='PackULLaVAInputs'),
]
train_dataloader = dict(
    batch_size=48, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='ullava_collate'),
    dataset=dict(type='MixtureDataset', datasets=[
        dict(type='LLaVADataset', task='caption', data_root=data_root,
             ann_file='annotations/chat.json', portion=1.0, pipeline=pipeline,
             data_prefix=dict(img_path='images/LLaVA-CC3M-Pretrain-595K/images/')),
        dict(type='LLaVADataset', task='video_caption', data_root=data_root,
             ann_file='annotations/tgif.json', portion=1.0, pipeline=pipeline,
             data_prefix=dict(img_path='images/tgif/')),
    ]))
