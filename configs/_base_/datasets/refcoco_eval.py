# RefCOCO-family evaluation data (u-LLaVA's re-packed <name>_<split>.json): one sample per
# expression. RES and REC read the same files; the config picks the task and metric.
_base_ = ['./ullava_7b_eval.py']

test_dataloader = dict(
    # other splits: refcoco_testA/testB, refcoco+_val/testA/testB, refcocog_val/test
    dataset=dict(type='RefCOCODataset', task='res', data_root={{_base_.data_root}},
                 ann_file='annotations/refcoco_val.json',
                 data_prefix=dict(img_path='images/coco2014/'),
                 pipeline={{_base_.test_pipeline}}, test_mode=True))
