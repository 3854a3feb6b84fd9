"""Print the whole config as the tools see it, ``--cfg-options`` applied (as MMDetection's).

``python tools/misc/print_config.py CONFIG [--cfg-options k=v ...] [--save-path FILE]``

stdout is the config alone (it can be redirected to a file); the environment variables the
config read are named on stderr.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # a checkout

from ullava.engine.launch import StartupLog, add_cfg_options, cli_main, load_config  # noqa: E402
from ullava.utils import UserError  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the full config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--save-path', help='also write the merged config to this file '
                                            '(.py, .json or .yaml)')
    add_cfg_options(parser)
    return parser.parse_args()


@cli_main
def main() -> None:
    args = parse_args()
    startup = StartupLog.start()  # stdout stays the config alone, or empty on an error
    cfg = load_config(args.config, args.cfg_options)
    startup.release(replay=False)  # MMEngine's "Using env variable" line: on stderr below
    for name, value in cfg.env_variables.items():
        print(f'environment variable {name}={value}', file=sys.stderr)
    print(cfg.pretty_text)
    if args.save_path:
        if osp.splitext(args.save_path)[1] not in ('.py', '.json', '.yaml', '.yml'):
            raise UserError(f'--save-path must end in .py, .json or .yaml: {args.save_path}')
        cfg.dump(args.save_path)
        print(f'config saved to {args.save_path}', file=sys.stderr)


if __name__ == '__main__':
    main()
