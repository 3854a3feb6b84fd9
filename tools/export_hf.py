"""Export a trained checkpoint as a folder that ullava and Hugging Face both load.

``python tools/export_hf.py CONFIG CKPT OUT_DIR [--cfg-options k=v ...]``

CKPT is a ``tools/train.py`` checkpoint (or a plain ``.safetensors`` state dict). OUT_DIR gets
``model.safetensors`` (LoRA merged into the LLM), ``config.json`` (a Hugging Face config holding
the model section of CONFIG), the ``trust_remote_code`` files ``configuration_ullava.py`` /
``modeling_ullava.py``, ``tokenizer/`` and a ``README.md`` model card. Load it with
``transformers.AutoModelForCausalLM.from_pretrained(OUT_DIR, trust_remote_code=True)`` (or
``AutoModel``), or ``ullava.models.hub.from_pretrained(OUT_DIR)``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from ullava.engine.launch import add_cfg_options, cli_main, load_config  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a ullava checkpoint as a model folder')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (tools/train.py .pth or .safetensors)')
    parser.add_argument('out_dir', help='folder to write')
    add_cfg_options(parser)
    return parser.parse_args()


@cli_main
def main() -> None:
    args = parse_args()
    from ullava.models.hub import build_from_checkpoint, save_pretrained
    cfg = load_config(args.config, args.cfg_options)
    model = build_from_checkpoint(cfg.model, args.checkpoint)
    out = save_pretrained(model, cfg, args.out_dir)
    print(f'exported {args.checkpoint} to {out}')


if __name__ == '__main__':
    main()
