# u-LLaVA-7B as the paper: Vicuna-7B v1.1, CLIP ViT-L/14 at 224 px (256 patch tokens, layer -2),
# SAM ViT-H. The weight folders are read from ULLAVA_CKPT_DIR (../paths.py); nothing is downloaded.
_base_ = ['../paths.py']
clip_size = 224
image_token_len = 256
num_frames = 8
video_token_len = image_token_len + num_frames
sam_size = 1024
tokenizer = dict(path={{_base_.llm_path}})

model = dict(
    type='ULLaVA',
    tokenizer=tokenizer,
    llm=dict(pretrained={{_base_.llm_path}}, torch_dtype='bfloat16'),
    vision_tower=dict(pretrained={{_base_.clip_path}}, select_layer=-2, num_frames=num_frames),
    projector='mlp',  # one Linear, as the reference's 'mlp' (released weights)
    # the SAM encoder's size (ViT-H / L / B) is read off the checkpoint's shapes
    mask_head=dict(image_size=sam_size, patch_size=16, prompt_dim=256,
                   checkpoint={{_base_.sam_checkpoint}}),
    box_head=dict(prompt_dim=256),
    trainable=['^projector', '^llm', r'^mask_head\.(mask_decoder|seg_projector)', '^box_head'],
    box_source='fuse',
    predict_protocol='generate',
    generation=dict(max_new_tokens=64, do_sample=False),
)
