"""Merge a LoRA-trained checkpoint's adapter into the LLM weights.

``python tools/merge_lora.py CONFIG CKPT OUT_CKPT.safetensors [--out-config FILE]``

Writes a plain (LoRA-free) ullava state dict to OUT_CKPT and the config without ``lora`` next to
it (``OUT_CKPT`` with the suffix ``.py``, or ``--out-config``), so that
``tools/test.py OUT_CONFIG OUT_CKPT`` evaluates the merged model.
"""
import argparse
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from ullava.engine.launch import add_cfg_options, cli_main, load_config  # noqa: E402
from ullava.utils import UserError  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Merge the LoRA adapter of a ullava checkpoint')
    parser.add_argument('config', help='the (LoRA) config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (tools/train.py .pth or .safetensors)')
    parser.add_argument('out_checkpoint', help='merged state dict to write (.safetensors)')
    parser.add_argument('--out-config', help='where the LoRA-free config goes '
                                             '(default: OUT_CHECKPOINT with suffix .py)')
    add_cfg_options(parser)
    return parser.parse_args()


@cli_main
def main() -> None:
    args = parse_args()
    from ullava.models.hub import merge_checkpoint
    out = Path(args.out_checkpoint)
    if out.suffix != '.safetensors':
        raise UserError(f'OUT_CHECKPOINT must end in .safetensors, got {out}')
    out_config = Path(args.out_config) if args.out_config else out.with_suffix('.py')
    cfg = load_config(args.config, args.cfg_options)
    merge_checkpoint(cfg, args.checkpoint, out, out_config)
    print(f'merged checkpoint: {out}\nconfig without lora: {out_config}')


if __name__ == '__main__':
    main()
