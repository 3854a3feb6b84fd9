# RES on RefCOCO val: cIoU / gIoU / prec@t. Scored as the reference measures it: the ground-truth
# answer ("Sure. Mask: [SEG]; Location: [LOC]; [tag]...[/tag].") is read in one forward pass and
# the mask comes from its [SEG] state (predict_protocol='teacher_forced'); 'generate' scores the
# model's own answers instead. Run: python tools/test.py THIS_CONFIG CKPT
_base_ = ['../_base_/datasets/refcoco_eval.py', '../_base_/schedules/adamw_cosine_epochs.py',
          '../_base_/default_runtime.py']

model = dict(predict_protocol='teacher_forced')
test_dataloader = dict(dataset=dict(task='res'))
test_evaluator = dict(type='RESMetric')
