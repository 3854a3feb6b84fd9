# A preset to add to a config's _base_ list; the config then sets
#   optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper', optimizer=dict(...))
# DeepSpeed ZeRO-3 in bf16: parameters, gradients and optimizer state are all sharded.
# Set `offload_param=dict(device='cpu')` / `offload_optimizer=dict(device='cpu')` to offload.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    gradient_clipping=1.0,
    zero_optimization=dict(
        stage=3,
        overlap_comm=True,
        contiguous_gradients=True,
        reduce_bucket_size='auto',
        stage3_prefetch_bucket_size='auto',
        stage3_param_persistence_threshold='auto',
        stage3_gather_16bit_weights_on_model_save=True,
        offload_optimizer=dict(device='none'),
        offload_param=dict(device='none'),
    ),
)
