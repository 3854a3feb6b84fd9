# RES on RefCOCO+ testA (unc split), u-LLaVA's refcoco+_testA.json; protocol in the base.
_base_ = ['../../_base_/evaluation/ullava_7b_res.py']
test_dataloader = dict(dataset=dict(ann_file='annotations/refcoco+_testA.json'))
