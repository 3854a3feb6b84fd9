default_scope = 'ullava'

# num_threads: a fixed intra-op thread count for bitwise-reproducible runs (with
# randomness.deterministic; recorded in checkpoints and compared on resume). None: torch's default.
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'), num_threads=None)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
