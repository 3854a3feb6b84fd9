# The embedded default under DeepSpeed ZeRO-2 (bf16) through FlexibleRunner:
#   tools/dist_train.sh configs/demo/ullava_tiny_demo_zero2.py 2
_base_ = ['./ullava_tiny_demo.py', '../_base_/strategies/deepspeed_zero2.py']
optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0))
