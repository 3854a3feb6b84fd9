# AdamW, linear warm-up over the first 3 % of training, then cosine decay to 0, counted in epochs
# and stepped every iteration (u-LLaVA's transformers-Trainer schedule: warmup_ratio 0.03, cosine).
# The WarmupRatio* schedulers round the 3 % up to whole iterations as transformers does, so a
# short epoch (a small dataset) still gets a warm-up (ullava/engine/schedulers.py).
# A config that changes max_epochs restates param_scheduler: its bounds are computed here.
# Training only: evaluation configs bring their own test_cfg (../datasets/ullava_7b_eval.py).
max_epochs = 1
warmup_ratio = 0.03
lr = 2e-5
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.0),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='WarmupRatioLinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_ratio * max_epochs, convert_to_iter_based=True),
    dict(type='WarmupRatioCosineAnnealingLR', by_epoch=True, begin=warmup_ratio * max_epochs,
         end=max_epochs, eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs + 1)
