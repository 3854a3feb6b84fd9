# RefCOCO-family evaluation data (u-LLaVA's re-packed <name>_<split>.json): one sample per
# expression. RES and REC read the same files; the config picks the task and metric.
# It inherits the model because the pipeline tokenises with the model's tokenizer.
_base_ = ['../models/ullava_7b.py']

data_root = '{{$ULLAVA_DATA:data/ullava}}/'
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadMasks'),
    dict(type='ResizeForCLIP', size={{_base_.clip_size}}),
    dict(type='ResizeForSAM', size={{_base_.sam_size}}),
    # no max_length: an evaluation answer must never be cut
    dict(type='TokenizeConversation', tokenizer={{_base_.tokenizer}}, template='conv_sep2',
         image_token_len={{_base_.image_token_len}}, video_token_len={{_base_.video_token_len}}),
    dict(type='PackULLaVAInputs'),
]
test_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='ullava_collate'),
    # other splits: refcoco_testA/testB, refcoco+_val/testA/testB, refcocog_val/test
    dataset=dict(type='RefCOCODataset', task='res', data_root=data_root,
                 ann_file='annotations/refcoco_val.json',
                 data_prefix=dict(img_path='images/coco2014/'), pipeline=test_pipeline,
                 test_mode=True))
