"""Convert a released u-LLaVA checkpoint to ullava's layout.

``python tools/convert_ullava_ckpt.py SRC DST.safetensors [--config CFG] [--allow-partial]``

SRC is a ``.bin`` / ``.pth`` / ``.safetensors`` file or a HF folder (sharded files + index json);
it is read with weights_only=True. The report lists the converted, ignored and unmapped keys
and, with ``--config``, the keys missing from or unexpected by the model that config builds
(without LoRA) and every shape mismatch. Unless ``--allow-partial``, any of those is an error and
nothing is written.

A state dict in the reference's exact layout converts with no flag: the rows of
``embed_tokens`` / ``lm_head`` are moved from the reference's token ids to the target
tokenizer's by token string, and both the transformers-4 (``vision_model.`` infix) and
transformers-5 CLIP names are read. A config whose model uses one of ullava's non-reference
options gets a NOTE. See :mod:`ullava.models.convert` and docs/conventions.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from ullava.engine.launch import DictAction, cli_main, load_config  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convert a released u-LLaVA checkpoint to ullava')
    parser.add_argument('src', help='released checkpoint: .bin/.pth/.safetensors file or HF folder')
    parser.add_argument('dst', help='output .safetensors file (ullava state dict)')
    parser.add_argument('--config', help='ullava config whose model the result must fit (built '
                                         'without LoRA and without reading weights)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. model.projector=linear')
    parser.add_argument('--allow-partial', action='store_true',
                        help='write the converted part even if keys are unmapped, missing or '
                             'mismatched')
    return parser.parse_args()


@cli_main
def main() -> None:
    args = parse_args()
    from ullava.models.convert import convert_checkpoint
    model_cfg = None
    if args.config is not None:
        model_cfg = load_config(args.config, args.cfg_options).model.to_dict()
    report = convert_checkpoint(args.src, args.dst, model_cfg, config_name=args.config,
                                allow_partial=args.allow_partial, log=print)
    status = 'written' if report.ok else 'written PARTIALLY (--allow-partial)'
    print(f'{args.dst}: {len(report.converted)} tensors {status}')


if __name__ == '__main__':
    main()
