# ADE20K-150 semantic segmentation on its 2,000 validation images: mIoU / aAcc / mAcc (mmseg's
# IoUMetric on the assembled label map). The paper reports no such number; the protocol is the
# standard one: every one of the 150 classes is prompted, without looking at the ground truth,
# and read in one forward pass ("Sure. wall: [SEG]; building: [SEG]; ..."), each pixel takes
# the class whose mask scores highest; ADE's label reduction as in training (raw 0 ignored).
# annotations/ade20k_val.json: records like ade20k.json's (docs/datasets.md says how to write
# it from ADEChallengeData2016/{images,annotations}/validation). Run: tools/test.py CONFIG CKPT
_base_ = ['../../_base_/datasets/ullava_7b_eval.py', '../../_base_/default_runtime.py']

model = dict(predict_protocol='teacher_forced')
test_dataloader = dict(
    batch_size=1,  # 150 masks per image
    dataset=dict(type='ADE20KDataset', task='semseg', data_root={{_base_.data_root}},
                 ann_file='annotations/ade20k_val.json',
                 data_prefix=dict(img_path='image_root/ade20k/'),
                 pipeline={{_base_.test_pipeline}}, test_mode=True))
test_evaluator = dict(type='PromptSemSegMetric')
