"""A web page to try a model: ``python tools/web_demo.py CONFIG CKPT [--host H] [--port P]``.

Upload an image or a clip, type a prompt, see the answer and the overlay. CKPT ``none`` means
random weights; ``--port 0`` picks a free port. The logic lives in ``ullava/apis/web.py``.
"""
import argparse
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from ullava.apis.infer import add_model_arguments  # noqa: E402
from ullava.engine.launch import cli_main  # noqa: E402
from ullava.utils import UserError  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Serve the u-LLaVA web demo')
    add_model_arguments(parser)
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on')
    parser.add_argument('--port', type=int, default=7860, help='port (0: any free port)')
    return parser.parse_args()


@cli_main
def main() -> None:
    args = parse_args()
    from ullava.apis.infer import load_inferencer
    from ullava.apis.web import WebDemo, make_server
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    inferencer = load_inferencer(args.config, args.checkpoint, args.device, args.cfg_options)
    try:
        server = make_server(WebDemo(inferencer), args.host, args.port)
    except OSError as err:  # port taken, address not local...
        raise UserError(f'cannot listen on {args.host}:{args.port}: {err.strerror}') from None
    # the exact line tests (and people) look for: the port is the real one when --port 0
    print(f'serving on http://{args.host}:{server.server_port}/', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == '__main__':
    main()
