# A tiny u-LLaVA of the same classes as the full one (LLaMA, CLIPVisionModel, SAM), randomly
# initialised, with the built-in tiny tokenizer: it builds and trains on a CPU in seconds.
clip_size = 64
clip_patch = 8
image_token_len = (clip_size // clip_patch) ** 2      # 64 patch tokens per image
num_frames = 4
video_token_len = image_token_len + num_frames        # spatial + temporal tokens
sam_size = 128
tokenizer = dict(tiny=True)

model = dict(
    type='ULLaVA',
    tokenizer=tokenizer,
    llm=dict(config=dict(model_type='llama', hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=1024, tie_word_embeddings=False)),
    vision_tower=dict(config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=clip_size,
                                  patch_size=clip_patch),
                      select_layer=-2, num_frames=num_frames),
    projector='mlp2x',  # Linear-GELU-Linear (the reference's 'mlp' is one Linear)
    mask_head=dict(encoder=dict(embed_dim=64, depth=2, num_heads=4, window_size=0),
                   image_size=sam_size, patch_size=8, prompt_dim=64,
                   decoder=dict(depth=2, mlp_dim=128, num_heads=4)),
    box_head=dict(prompt_dim=64),
    # stage II: projector, LLM, mask decoder and the [SEG]/[LOC] heads train; towers frozen
    trainable=['^projector', '^llm', r'^mask_head\.(mask_decoder|seg_projector)', '^box_head'],
    box_source='fuse',
    predict_protocol='generate',
    generation=dict(max_new_tokens=24, do_sample=False),
)
