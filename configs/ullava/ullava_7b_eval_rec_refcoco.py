# REC on RefCOCO val: Acc@0.5 (and box AP) on boxes normalised by the padded square, from the
# [LOC] head fused with the mask's box (box_source='fuse'). Same teacher-forced protocol as the
# reference's grounding evaluation. Run: python tools/test.py THIS_CONFIG CKPT
_base_ = ['../_base_/datasets/refcoco_eval.py', '../_base_/schedules/adamw_cosine_epochs.py',
          '../_base_/default_runtime.py']

model = dict(predict_protocol='teacher_forced')
test_dataloader = dict(dataset=dict(task='rec'))
test_evaluator = dict(type='RECMetric')
