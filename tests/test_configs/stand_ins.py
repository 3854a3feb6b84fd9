"""Tiny stand-ins for the weights the 7B configs read, laid out as the real downloads are.

``ULLAVA_CKPT_DIR`` holds, as for the real model (configs/_base_/paths.py):

* ``vicuna-7b-v1.1/``: a LLaMA checkpoint folder with a sentencepiece ``tokenizer.model`` and the
  Vicuna release's ``tokenizer_config.json`` fields, and NO ``tokenizer.json`` (Vicuna ships
  none, so transformers must convert the sentencepiece model itself);
* ``clip-vit-large-patch14/``: a whole ``CLIPModel`` folder (text and vision towers, like
  openai/clip-vit-large-patch14) with its ``preprocessor_config.json``; ViT-L/14's 224 px input
  and 14 px patches keep the 256 image tokens the pipelines count on;
* ``sam_vit_h_4b8939.pth``: a segment-anything ``Sam`` state dict (SAM's own prompt encoder and
  mask decoder, a 2-block image encoder), under the official file name.

Every size is as small as the configs allow, so a 7B config builds and steps in seconds.
"""
from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

import torch

VICUNA, CLIP, SAM = 'vicuna-7b-v1.1', 'clip-vit-large-patch14', 'sam_vit_h_4b8939.pth'

# Text the tokenizer is trained on: the conversation templates and answers the datasets write.
CORPUS = [
    'A chat between a curious human and an artificial intelligence assistant. The assistant '
    "gives helpful, detailed, and polite answers to the human's questions.",
    'USER: ASSISTANT: Human: Assistant: ### </s>',
    'Sure. Mask: [SEG]; Location: [LOC]; [tag]square[/tag]. Info: Explanation: it is red.',
    'Can you segment and locate the red box in this image? Please output the mask.',
    'Output the segmentation mask of the box on the left in the image.',
    'Give a brief description of the image. Describe the video. Find the salient object.',
    'What colour is the box? Answer with a single word or phrase. red green blue grey.',
    'wall floor person building sky tree aeroplane body wing basket handle 0123456789',
]


def write_vicuna(folder: Path, vocab_size: int = 400) -> None:
    """A 2-layer LlamaForCausalLM and a sentencepiece BPE tokenizer trained on the fly, with
    LLaMA's tokenizer settings (byte fallback, dummy prefix, <unk>/<s>/</s> = 0/1/2)."""
    import sentencepiece as spm
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_writer=model, model_type='bpe',
        vocab_size=vocab_size, hard_vocab_limit=False, byte_fallback=True,
        character_coverage=1.0, split_digits=True, add_dummy_prefix=True,
        remove_extra_whitespaces=False, normalization_rule_name='identity',
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    (folder / 'tokenizer.model').write_bytes(model.getvalue())
    size = spm.SentencePieceProcessor(model_proto=model.getvalue()).vocab_size()

    def token(text: str) -> dict:  # how the Vicuna release writes its special tokens
        return {'__type': 'AddedToken', 'content': text, 'lstrip': False, 'normalized': True,
                'rstrip': False, 'single_word': False}

    (folder / 'tokenizer_config.json').write_text(json.dumps({
        'add_bos_token': True, 'add_eos_token': False, 'bos_token': token('<s>'),
        'clean_up_tokenization_spaces': False, 'eos_token': token('</s>'),
        'model_max_length': 2048, 'pad_token': None, 'sp_model_kwargs': {},
        'tokenizer_class': 'LlamaTokenizer', 'unk_token': token('<unk>')}, indent=2))
    (folder / 'special_tokens_map.json').write_text(json.dumps(
        {'bos_token': '<s>', 'eos_token': '</s>', 'unk_token': '<unk>'}, indent=2))
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(
        vocab_size=size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
        bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-6,
        tie_word_embeddings=False)).save_pretrained(folder)


def write_clip(folder: Path) -> None:
    """A whole CLIPModel (2-layer towers, 224 px / 14 px patches) and its image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=64, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=224, patch_size=14),
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    # openai/clip-vit-large-patch14's preprocessor_config.json values
    CLIPImageProcessor(
        do_resize=True, size={'shortest_edge': 224}, resample=3, do_center_crop=True,
        crop_size={'height': 224, 'width': 224}, do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711]).save_pretrained(folder)


def write_sam(path: Path) -> None:
    """segment-anything's ``Sam`` with its real prompt encoder and mask decoder (256 wide) and a
    2-block, 32-wide, windowed image encoder, saved as a plain state dict like the release."""
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)

    torch.manual_seed(0)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=1024, patch_size=16, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4,
            out_chans=256, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=14, global_attn_indexes=()),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                     input_image_size=(1024, 1024), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3, transformer_dim=256, iou_head_depth=3,
            iou_head_hidden_dim=256,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8)))
    torch.save(sam.state_dict(), path)


def write_checkpoints(root: Path) -> Path:
    """``root`` laid out as ULLAVA_CKPT_DIR."""
    root.mkdir(parents=True, exist_ok=True)
    write_vicuna(root / VICUNA)
    write_clip(root / CLIP)
    write_sam(root / SAM)
    return root
