# Salient object segmentation: MAE, max F-measure and S-measure on the mask probabilities.
# The reference scores it with the same script as RES, i.e. with the answer given
# (teacher_forced). Run: python tools/test.py THIS_CONFIG CKPT
_base_ = ['../_base_/datasets/salient_eval.py', '../_base_/schedules/adamw_cosine_epochs.py',
          '../_base_/default_runtime.py']

model = dict(predict_protocol='teacher_forced')
test_evaluator = dict(type='SalientMetric')
