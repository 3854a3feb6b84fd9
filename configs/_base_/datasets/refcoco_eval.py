# RefCOCO-family evaluation data: u-LLaVA's re-packed <dataset>_<split>.json (the reference's
# configs/eval/eval_all.yaml), one sample per expression. RES and REC read the same files; the
# split config sets test_dataloader.dataset.ann_file, the task base the task and metric.
_base_ = ['./ullava_7b_eval.py']

test_dataloader = dict(
    dataset=dict(type='RefCOCODataset', task='res', data_root={{_base_.data_root}},
                 data_prefix=dict(img_path='image_root/coco2014/'),
                 # the reference's evaluation question, word for word (its ValResDataset)
                 templates=dict(test='<image>\nOutput the segmentation mask of the {} in the '
                                     'image.'),
                 pipeline={{_base_.test_pipeline}}, test_mode=True))
