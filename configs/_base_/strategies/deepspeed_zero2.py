# A preset to add to a config's _base_ list; the config then sets
#   optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper', optimizer=dict(...))
# DeepSpeed ZeRO-2 in bf16 through MMEngine's FlexibleRunner (u-LLaVA's training set-up).
# Set `offload_optimizer=dict(device='cpu')` to keep the optimizer state in host memory.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    gradient_clipping=1.0,
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        allgather_bucket_size=2e8,
        reduce_scatter=True,
        reduce_bucket_size='auto',
        overlap_comm=True,
        contiguous_gradients=True,
        offload_optimizer=dict(device='none'),
    ),
)
