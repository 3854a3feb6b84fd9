# REC on RefCOCOg test (umd split), u-LLaVA's refcocog_test.json; protocol in the base.
_base_ = ['../../_base_/evaluation/ullava_7b_rec.py']
test_dataloader = dict(dataset=dict(ann_file='annotations/refcocog_test.json'))
