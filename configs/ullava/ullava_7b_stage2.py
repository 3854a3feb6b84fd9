# u-LLaVA-7B stage II (full fine-tuning): projector, LLM, SAM mask decoder and the [SEG]/[LOC]
# projectors train on the README's mixture. conv_sep2, lr 2e-5, 16 per GPU, 512 tokens, 5 epochs,
# 3 % warm-up, cosine. The model (models/ullava_7b.py) comes in through the dataset base.
_base_ = ['../_base_/datasets/ullava_stage2_mixture.py',
          '../_base_/schedules/adamw_cosine_epochs.py', '../_base_/default_runtime.py']

max_epochs = 5
warmup_ratio = 0.03
model = dict(trainable=['^projector', '^llm', r'^mask_head\.(mask_decoder|seg_projector)',
                        '^box_head'])
optim_wrapper = dict(optimizer=dict(lr=2e-5))
param_scheduler = [
    dict(type='WarmupRatioLinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_ratio * max_epochs, convert_to_iter_based=True),
    dict(type='WarmupRatioCosineAnnealingLR', by_epoch=True, begin=warmup_ratio * max_epochs,
         end=max_epochs, eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs + 1)
train_dataloader = dict(batch_size=16)
# the stage I checkpoint (its projector); missing head weights come from SAM / random init
load_from = 'work_dirs/ullava_7b_stage1_cc3m_tgif/epoch_1.pth'
# one checkpoint per epoch (epoch_<n>.pth), trainable weights only (the towers are frozen)
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))
custom_hooks = [dict(type='TrainableCheckpointHook')]
