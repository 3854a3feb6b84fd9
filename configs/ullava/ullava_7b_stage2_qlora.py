# Stage II with QLoRA: the LLM loaded in 4-bit NF4 (bitsandbytes, CUDA only) and LoRA adapters on
# top. For GPU users with less memory; on a machine without CUDA it stops with a clear error.
#   pip install bitsandbytes
_base_ = ['./ullava_7b_stage2_lora.py']
model = dict(llm=dict(load_in_4bit=True, torch_dtype='bfloat16'))
