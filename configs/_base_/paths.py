# Where u-LLaVA-7B's weights and data live: two environment variables (MMEngine's
# {{$VAR:default}}), read by every 7B config, so pointing them all at your copies is two exports.
#   ULLAVA_CKPT_DIR    vicuna-7b-v1.1/  clip-vit-large-patch14/  sam_vit_h_4b8939.pth
#   ULLAVA_DATA_ROOT   image_root/ (the reference README's image tree)  annotations/ (the JSONs)
# docs/datasets.md has the whole layout and where each file comes from. Nothing is downloaded.
# These values are copied into the model and into every pipeline when the config is read, so
# change them through the environment; `--cfg-options llm_path=...` would change nothing. One
# file of another name is one real key, e.g. model.mask_head.checkpoint=.../sam_vit_b_01ec64.pth
ckpt_dir = '{{$ULLAVA_CKPT_DIR:checkpoints}}/'
llm_path = ckpt_dir + 'vicuna-7b-v1.1'               # HF folder: weights + tokenizer.model
clip_path = ckpt_dir + 'clip-vit-large-patch14'      # HF CLIPModel folder (+ preprocessor)
sam_checkpoint = ckpt_dir + 'sam_vit_h_4b8939.pth'   # official segment-anything checkpoint
data_root = '{{$ULLAVA_DATA_ROOT:data/ullava}}/'
