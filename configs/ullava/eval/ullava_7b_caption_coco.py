# COCO captions on val2017 (5,000 images, COCO's own captions_val2017.json): BLEU-4, CIDEr-D
# (and METEOR where Java is installed), the coco-caption scorers. The paper reports no
# captioning number; the protocol is the usual one: the model generates a caption for "Give a
# brief description of the image." (greedy, the model's generation settings) and every
# reference caption of the image is scored against it.
# Run: python tools/test.py THIS_CONFIG CKPT
_base_ = ['../../_base_/datasets/ullava_7b_eval.py', '../../_base_/default_runtime.py']

model = dict(predict_protocol='generate')
test_dataloader = dict(
    dataset=dict(type='COCOCaptionDataset', task='caption', data_root={{_base_.data_root}},
                 ann_file='image_root/coco2017/annotations/captions_val2017.json',
                 data_prefix=dict(img_path='image_root/coco2017/val2017/'),
                 pipeline={{_base_.test_pipeline}}, test_mode=True))
test_evaluator = dict(type='CaptionMetric')
