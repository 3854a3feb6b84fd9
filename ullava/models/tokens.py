"""ullava's special tokens, shared by the tokenizer, the data pipeline and the model."""
IGNORE_INDEX = -100

IMAGE = '<image>'            # written in prompts; expanded before tokenising (not a vocab entry)
IMAGE_PATCH = '<image_patch>'
IMAGE_BEGIN = '<img_beg>'
IMAGE_END = '</img_end>'
VIDEO = '<video>'            # written in prompts; expanded before tokenising (not a vocab entry)
VIDEO_PATCH = '<video_patch>'
VIDEO_BEGIN = '<vid_beg>'
VIDEO_END = '</vid_end>'
SEG = '[SEG]'                # the state before it prompts the mask decoder
LOC = '[LOC]'                # the state before it is decoded into a box
TAG_BEGIN = '[tag]'
TAG_END = '[/tag]'
PAD = '[PAD]'

# Added after the base vocabulary in exactly this order, the reference's (u-LLaVA
# models/ullava_core.py): on LLaMA's 32,000 that is [PAD] 32000 ... [/tag] 32010, so the
# embedding and LM-head rows of a released checkpoint sit at the ids this tokenizer gives.
ADDED_TOKENS = [PAD, IMAGE_PATCH, VIDEO_PATCH, IMAGE_BEGIN, IMAGE_END, VIDEO_BEGIN, VIDEO_END,
                SEG, LOC, TAG_BEGIN, TAG_END]
# The tokens the model looks up by id (placeholders, delimiters, head prompts).
SPECIAL_TOKENS = ADDED_TOKENS[1:]


def expand_visual_placeholders(text: str, image_tokens: int, video_tokens: int) -> str:
    """``<image>`` -> begin + N patch placeholders + end (and the same for ``<video>``)."""
    text = text.replace(IMAGE, IMAGE_BEGIN + IMAGE_PATCH * image_tokens + IMAGE_END)
    return text.replace(VIDEO, VIDEO_BEGIN + VIDEO_PATCH * video_tokens + VIDEO_END)
