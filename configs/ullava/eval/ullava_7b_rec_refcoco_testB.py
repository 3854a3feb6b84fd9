# REC on RefCOCO testB (unc split), u-LLaVA's refcoco_testB.json; protocol in the base.
_base_ = ['../../_base_/evaluation/ullava_7b_rec.py']
test_dataloader = dict(dataset=dict(ann_file='annotations/refcoco_testB.json'))
