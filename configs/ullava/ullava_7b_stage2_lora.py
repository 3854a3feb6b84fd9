# u-LLaVA-7B stage II with LoRA on the LLM's attention projections (r=8): lr 2e-4, 32 per GPU;
# otherwise as the full stage II.
_base_ = ['./ullava_7b_stage2.py']

model = dict(
    lora=dict(r=8, lora_alpha=16, lora_dropout=0.05,
              target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj']),
    # LoRA adapters instead of the LLM; its token embeddings and LM head stay trainable, since the
    # added tokens ([SEG], [LOC], [tag], ...) start untrained.
    trainable=['^projector', r'^llm\..*\.lora_[AB]\.', r'^llm\..*\.(embed_tokens|lm_head)\.',
               r'^mask_head\.(mask_decoder|seg_projector)', '^box_head'])
optim_wrapper = dict(optimizer=dict(lr=2e-4))
train_dataloader = dict(batch_size=32)
