# Stage I data: LLaVA's CC3M-595K chat.json (images) and u-LLaVA's TGIF captions (GIFs), both in
# LLaVA's conversation format, with the conv_simple template and 1024 tokens at most.
# It inherits the model because the pipeline tokenises with the model's tokenizer and must match
# its image/video token budget.
_base_ = ['../models/ullava_7b.py']

# Under ULLAVA_DATA_ROOT (../paths.py; the layout is in docs/datasets.md):
#   annotations/chat.json          LLaVA-CC3M-Pretrain-595K; "image" relative to
#   image_root/LLaVA-CC3M-Pretrain-595K/images/
#   annotations/tgif_llava.json    u-LLaVA's TGIF conversations ("tgif.json" in its README);
#   image_root/TGIF/GIFs/          what its "gif" paths are relative to
data_root = {{_base_.data_root}}
max_length = 1024
pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadVideo', num_frames={{_base_.num_frames}}),
    # the reference's stage I does not pad (aspect_ratio None): the CLIP processor alone
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}, processor={{_base_.clip_path}},
         pad=False),
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
             data_prefix=dict(img_path='image_root/LLaVA-CC3M-Pretrain-595K/images/')),
        dict(type='LLaVADataset', task='video_caption', data_root=data_root,
             ann_file='annotations/tgif_llava.json', portion=1.0, pipeline=pipeline,
             data_prefix=dict(img_path='image_root/TGIF/GIFs/')),
    ]))
