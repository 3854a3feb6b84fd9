# COCO-Stuff semantic segmentation on the 5,000 val2017 images: mIoU / aAcc / mAcc. As
# ullava_7b_semseg_ade20k.py: every class prompted (none looked up in the ground truth); the
# classes whose name contains "-" are ignored, as the reference's training reader does.
# annotations/cocostuff_val.json: records like cocostuff.json's (docs/datasets.md).
# Run: python tools/test.py THIS_CONFIG CKPT
_base_ = ['../../_base_/datasets/ullava_7b_eval.py', '../../_base_/default_runtime.py']

model = dict(predict_protocol='teacher_forced')
test_dataloader = dict(
    batch_size=1,  # one mask per class and image
    dataset=dict(type='COCOStuffDataset', task='semseg', data_root={{_base_.data_root}},
                 ann_file='annotations/cocostuff_val.json',
                 data_prefix=dict(img_path='image_root/'),
                 pipeline={{_base_.test_pipeline}}, test_mode=True))
test_evaluator = dict(type='PromptSemSegMetric')
