# REC (referring expression comprehension): Acc@0.5 (and box AP) of the [LOC] box fused with the
# mask's box (box_source='fuse'), on boxes normalised by the padded square, with the same
# teacher-forced protocol as the reference's evaluation/eval_ullava_grounding.py.
# A split config adds test_dataloader.dataset.ann_file. Run: python tools/test.py CONFIG CKPT
_base_ = ['../datasets/refcoco_eval.py', '../default_runtime.py']

model = dict(predict_protocol='teacher_forced')
test_dataloader = dict(dataset=dict(task='rec'))
test_evaluator = dict(type='RECMetric')
