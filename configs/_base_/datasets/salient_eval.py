# Salient object segmentation evaluation on an image/mask folder pair (DUTS-style:
# <img_dir>/<name>.jpg|png with <mask_dir>/<name>.png).
_base_ = ['./ullava_7b_eval.py']

test_dataloader = dict(
    dataset=dict(type='SalientFolderDataset', task='salient', data_root={{_base_.data_root}},
                 img_dir='images/salient_test/images', mask_dir='images/salient_test/masks',
                 pipeline={{_base_.test_pipeline}}, test_mode=True))
