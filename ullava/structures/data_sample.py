"""The data sample that travels from the dataset through the model to the metric."""
from mmengine.structures import BaseDataElement


class ULLaVADataSample(BaseDataElement):
    """One conversation about zero or one image / video.

    Meta (``metainfo``): ``task``, ``img_path``, ``ori_shape`` (H, W), ``sam_resized_shape``
    (H, W after resizing the longest side to the SAM input size), ``prompt`` (the question text).

    Ground truth (data fields, set by the pipeline):
        ``gt_answer`` str; ``gt_answers`` / ``gt_captions`` list[str];
        ``gt_masks`` bool [k,H,W] at the original size (one per [SEG] in the answer);
        ``gt_masks_sam`` bool [k,S,S] in the SAM input frame (for the loss);
        ``gt_boxes`` float [k,4] xyxy pixels; ``gt_boxes_norm`` [k,4] xyxy / longest side;
        ``gt_sem_seg`` int [H,W] (semantic segmentation).

    Predictions (``pred_text`` set by ``ULLaVA.predict``, the rest by its heads: one output per
    token of the answer, never padded or cut to the targets; metrics do the matching):
        ``pred_text`` str; ``pred_masks`` bool [k,H,W]; ``pred_mask_scores`` float [k,H,W]
        (k = the answer's [SEG]s); ``pred_boxes`` float [n,4] xyxy pixels and
        ``pred_box_scores`` [n] (n = its [LOC]s, or k where it has none: boxes of the masks).
        A plugin head adds its own (``BaseHead.pred_fields``); targets likewise
        (``ullava.structures.targets``).
    """
