"""Convert a released u-LLaVA checkpoint to ullava's layout.

``python tools/convert_ullava_ckpt.py SRC DST.safetensors [--config CFG] [--allow-partial]``

SRC is a ``.bin`` / ``.pth`` / ``.safetensors`` file or a HF folder (sharded files + index json);
it is read with weights_only=True. The report lists the converted, ignored and unmapped keys
and, with ``--config``, the keys missing from or unexpected by the model that config builds
(without LoRA) and every shape mismatch. Unless ``--allow-partial``, any of those is an error and
nothing is written.

The box head's converted weights are not numerically equivalent to the reference's (it decodes
an unconstrained xyxy, ullava a sigmoid cx, cy, w, h): use ``box_source='mask'`` until it is
fine-tuned. See :mod:`ullava.models.convert`.
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
