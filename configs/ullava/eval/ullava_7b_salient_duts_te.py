# Salient object segmentation on DUTS-TE (5,019 images, its official folders): MAE, max
# F-measure and S-measure of the mask probabilities. The reference scores salient sets with its
# RES script, i.e. with the answer given ("Find the salient object in the image." -> "Sure. Mask:
# [SEG]; Location: [LOC];"), so predict_protocol='teacher_forced'; the object is the pixels equal
# to 255. ECSSD / DUT-OMRON: point img_dir / mask_dir at their image and mask folders.
# Run: python tools/test.py THIS_CONFIG CKPT
_base_ = ['../../_base_/datasets/ullava_7b_eval.py', '../../_base_/default_runtime.py']

model = dict(predict_protocol='teacher_forced')
test_dataloader = dict(
    dataset=dict(type='SalientFolderDataset', task='salient', data_root={{_base_.data_root}},
                 img_dir='image_root/DUTS-TE/DUTS-TE-Image',
                 mask_dir='image_root/DUTS-TE/DUTS-TE-Mask',
                 pipeline={{_base_.test_pipeline}}, test_mode=True))
test_evaluator = dict(type='SalientMetric')
