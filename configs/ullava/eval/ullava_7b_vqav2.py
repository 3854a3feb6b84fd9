# VQAv2 val: the VQA accuracy (min(#annotators who gave the answer / 3, 1), answers normalised as
# the official script). The paper reports no VQAv2 number; the protocol is LLaVA's: the model
# generates a short answer to "<question> Answer with a single word or phrase."
# annotations/vqav2_val.json: one record per question, {"question_id", "image", "question",
# "answers"} (docs/datasets.md says how to write it from the official questions/annotations).
# Run: python tools/test.py THIS_CONFIG CKPT
_base_ = ['../../_base_/datasets/ullava_7b_eval.py', '../../_base_/default_runtime.py']

model = dict(predict_protocol='generate', generation=dict(max_new_tokens=16))
test_dataloader = dict(
    dataset=dict(type='VQAv2Dataset', task='vqa', data_root={{_base_.data_root}},
                 ann_file='annotations/vqav2_val.json',
                 data_prefix=dict(img_path='image_root/coco2014/val2014/'),
                 pipeline={{_base_.test_pipeline}}, test_mode=True))
test_evaluator = dict(type='VQAMetric')
