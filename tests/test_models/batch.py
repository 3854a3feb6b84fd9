"""A hand-made mixed batch for the tiny model: text-only, caption, RES with two [SEG], video, REC."""
import torch

from ullava.datasets.conversation import tokenize_conversation
from ullava.structures import ULLaVADataSample


def make_sample(model, prompt, answer, image=False, video=False, masks=0, ori=(40, 50), seed=0):
    g = torch.Generator().manual_seed(seed)
    tok = tokenize_conversation(model.tokenizer, 'conv_sep2', [(0, prompt), (1, answer)],
                                model.image_tokens, model.video_tokens)
    inputs = dict(input_ids=torch.tensor(tok['input_ids']), labels=torch.tensor(tok['labels']),
                  prompt_len=tok['prompt_len'])
    clip = model.vision_tower.image_size
    sam = model.mask_head.image_size
    scale = sam / max(ori)
    resized = (round(ori[0] * scale), round(ori[1] * scale))
    ds = ULLaVADataSample(metainfo=dict(ori_shape=ori, sam_resized_shape=resized))
    if image:
        inputs['image'] = torch.randint(0, 255, (3, clip, clip), dtype=torch.uint8, generator=g)
        inputs['sam_image'] = torch.randint(0, 255, (3, sam, sam), dtype=torch.uint8, generator=g)
    if video:
        frames = model.vision_tower.num_frames
        inputs['video'] = torch.randint(0, 255, (frames, 3, clip, clip), dtype=torch.uint8,
                                        generator=g)
    if masks:
        gt = torch.zeros(masks, *ori, dtype=torch.bool)
        for k in range(masks):
            gt[k, 5 + 10 * k:20 + 10 * k, 10:30] = True
        ds.gt_masks = gt
        sam_masks = torch.zeros(masks, sam, sam, dtype=torch.bool)
        for k in range(masks):
            sam_masks[k, int((5 + 10 * k) * scale):int((20 + 10 * k) * scale),
                      int(10 * scale):int(30 * scale)] = True
        ds.gt_masks_sam = sam_masks
        ds.gt_boxes = torch.tensor([[10., 5 + 10 * k, 30., 20 + 10 * k] for k in range(masks)])
        ds.gt_boxes_norm = ds.gt_boxes / max(ori)
    return inputs, ds


def mixed_batch(model):
    samples = [
        make_sample(model, 'What is the capital of France?', 'Paris.', seed=1),
        make_sample(model, '<image>\nDescribe the image.', 'a red circle on a striped background',
                    image=True, seed=2),
        make_sample(model, '<image>\nSegment the circle and the square.',
                    'Sure. Mask: [SEG]; Location: [LOC]; and Mask: [SEG]; Location: [LOC].',
                    image=True, masks=2, seed=3),
        make_sample(model, '<video>\nDescribe the video.', 'a blue square moves to the right',
                    video=True, seed=4),
        make_sample(model, '<image>\nLocate the blue square.',
                    'Sure. Mask: [SEG]; Location: [LOC]; [tag]square[/tag].', image=True, masks=1,
                    ori=(64, 48), seed=5),
    ]
    return dict(inputs=[s[0] for s in samples], data_samples=[s[1] for s in samples])
