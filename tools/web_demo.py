"""A chat web demo: ``python tools/web_demo.py [CONFIG CKPT] [--host H] [--port P]``.

Attach an image or a clip, ask several questions about it, see each answer stream in and its
masks and boxes drawn on the image. CKPT ``none`` means random weights; ``--port 0`` picks a free
port. The app lives in ``ullava/apis/web.py`` (its API: ``/chat``, callable with gradio_client).
"""
import argparse
import logging
import os.path as osp
import signal
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from ullava.apis.infer import add_model_arguments  # noqa: E402
from ullava.engine.launch import cli_main  # noqa: E402
from ullava.utils import UserError  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Serve the u-LLaVA chat web demo')
    add_model_arguments(parser)
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on')
    parser.add_argument('--port', type=int, default=7860, help='port (0: any free port)')
    parser.add_argument('--max-turns', type=int, default=8,
                        help='earlier turns the model sees with each new question')
    return parser.parse_args()


@cli_main
def main() -> None:
    args = parse_args()
    from ullava.apis.infer import load_inferencer
    from ullava.apis.web import ChatDemo, build_app, demo_examples, free_port, launch
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    logging.getLogger('httpx').setLevel(logging.WARNING)  # gradio's requests to itself at start
    port = free_port(args.host, args.port)  # a taken port is told before the model loads
    inferencer = load_inferencer(args.config, args.checkpoint, args.device, args.cfg_options)
    # SIGTERM (a service manager, a test) ends like Ctrl-C: the server closes, files are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tempfile.TemporaryDirectory(prefix='ullava-web-') as workdir:  # examples and overlays
        chat = ChatDemo(inferencer, max_turns=args.max_turns, workdir=workdir)
        app = build_app(chat, demo_examples(osp.join(workdir, 'examples')))
        try:
            url = launch(app, args.host, port, allowed_paths=[workdir])
        except OSError:  # taken meanwhile; gradio's message names its own environment variables
            raise UserError(f'cannot listen on {args.host}:{port}: the port is in use') from None
        # the exact line tests (and people) look for: the port is the real one when --port 0
        print(f'serving on {url}', flush=True)
        try:
            app.block_thread()  # until Ctrl-C; gradio closes the server
        finally:
            app.close()


if __name__ == '__main__':
    main()
