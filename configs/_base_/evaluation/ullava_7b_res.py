# RES (referring segmentation): cIoU / gIoU / prec@t, scored as the reference's
# evaluation/eval_ullava.py measures it: the ground-truth answer ("Sure. Mask: [SEG]; Location:
# [LOC]; [tag]...[/tag].") to "Output the segmentation mask of the <expression> in the image." is
# read in one forward pass and the mask comes from the [SEG] prompt (predict_protocol=
# 'teacher_forced'); 'generate' scores the model's own answers instead.
# A split config adds test_dataloader.dataset.ann_file. Run: python tools/test.py CONFIG CKPT
_base_ = ['../datasets/refcoco_eval.py', '../default_runtime.py']

model = dict(predict_protocol='teacher_forced')
test_dataloader = dict(dataset=dict(task='res'))
test_evaluator = dict(type='RESMetric')
