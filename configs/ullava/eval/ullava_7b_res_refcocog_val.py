# RES on RefCOCOg val (umd split), u-LLaVA's refcocog_val.json; protocol in the base.
_base_ = ['../../_base_/evaluation/ullava_7b_res.py']
test_dataloader = dict(dataset=dict(ann_file='annotations/refcocog_val.json'))
