"""ullava's special tokens, shared by the tokenizer, the data pipeline and the model."""
IGNORE_INDEX = -100

IMAGE = '<image>'            # written in prompts; expanded before tokenising
IMAGE_PATCH = '<image_patch>'
IMAGE_BEGIN = '<img_beg>'
IMAGE_END = '</img_end>'
VIDEO = '<video>'
VIDEO_PATCH = '<video_patch>'
VIDEO_BEGIN = '<vid_beg>'
VIDEO_END = '</vid_end>'
SEG = '[SEG]'                # its hidden state prompts the mask decoder
LOC = '[LOC]'                # its hidden state is decoded into a box
TAG_BEGIN = '[tag]'
TAG_END = '[/tag]'
PAD = '[PAD]'

SPECIAL_TOKENS = [IMAGE, IMAGE_PATCH, IMAGE_BEGIN, IMAGE_END, VIDEO, VIDEO_PATCH, VIDEO_BEGIN,
                  VIDEO_END, SEG, LOC, TAG_BEGIN, TAG_END]


def expand_visual_placeholders(text: str, image_tokens: int, video_tokens: int) -> str:
    """``<image>`` -> begin + N patch placeholders + end (and the same for ``<video>``)."""
    text = text.replace(IMAGE, IMAGE_BEGIN + IMAGE_PATCH * image_tokens + IMAGE_END)
    return text.replace(VIDEO, VIDEO_BEGIN + VIDEO_PATCH * video_tokens + VIDEO_END)
