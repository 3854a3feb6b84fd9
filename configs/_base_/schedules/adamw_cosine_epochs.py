# AdamW, linear warm-up over the first 3 % of training, then cosine decay to 0, counted in epochs
# and stepped every iteration (u-LLaVA's transformers-Trainer schedule: warmup_ratio 0.03, cosine).
# A config that changes max_epochs restates param_scheduler: its bounds are computed here.
max_epochs = 1
warmup_ratio = 0.03
lr = 2e-5
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.0),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_ratio * max_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=warmup_ratio * max_epochs,
         end=max_epochs, eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs + 1)
test_cfg = dict(type='TestLoop')
