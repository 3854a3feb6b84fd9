# u-LLaVA-7B stage I: align the projector on image (CC3M-595K) and video (TGIF) captions.
# conv_simple, projector only, lr 2e-3, 48 per GPU, 1024 tokens, 1 epoch, 3 % warm-up, cosine.
# The model (models/ullava_7b.py) comes in through the dataset base.
_base_ = ['../_base_/datasets/ullava_stage1_cc3m_tgif.py',
          '../_base_/schedules/adamw_cosine_epochs.py', '../_base_/default_runtime.py']

# Stage I trains no segmentation or box head, so SAM (ViT-H) is not even loaded.
model = dict(trainable=['^projector'], mask_head=None, box_head=None)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
train_dataloader = dict(batch_size=48)
# One checkpoint per epoch, named epoch_<n>.pth (stage II's load_from names epoch_1.pth), with
# the trainable weights only: the frozen LLM, CLIP and SAM are the pretrained folders already.
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))
custom_hooks = [dict(type='TrainableCheckpointHook')]
