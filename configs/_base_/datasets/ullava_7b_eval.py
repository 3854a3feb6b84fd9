# What every u-LLaVA-7B evaluation shares: the model (the pipeline tokenises with its tokenizer),
# the test pipeline, the test loader and loop. The task's dataset goes in
# test_dataloader.dataset, its metric in test_evaluator.
_base_ = ['../models/ullava_7b.py']

data_root = {{_base_.data_root}}
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadMasks'),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}, processor={{_base_.clip_path}}),
    dict(type='ResizeForSAM', size={{_base_.sam_size}}),
    # no max_length: an evaluation answer must never be cut
    dict(type='TokenizeConversation', tokenizer={{_base_.tokenizer}}, template='conv_sep2',
         image_token_len={{_base_.image_token_len}}, video_token_len={{_base_.video_token_len}}),
    dict(type='PackULLaVAInputs'),
]
test_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ullava_collate'))
test_cfg = dict(type='TestLoop')
