"""Ask a trained model: ``python tools/infer.py CONFIG CKPT --image PATH --prompt TEXT``.

``--video PATH`` instead of ``--image``; ``--batch FILE.jsonl`` (lines of ``{"image"|"video":
path, "prompt": text}``) instead of both. CKPT ``none`` means random weights. Prints the answer;
writes ``<out>/results.jsonl`` (one line per request), and per ``[SEG]``
``<out>/<stem>_mask<k>.png`` plus ``<out>/<stem>_overlay.png``.
The logic lives in ``ullava/apis/infer.py``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from ullava.apis.infer import add_model_arguments  # noqa: E402
from ullava.engine.launch import cli_main  # noqa: E402
from ullava.utils import UserError  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Answer prompts about images / clips')
    add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image', help='an image file')
    source.add_argument('--video', help='a clip: GIF, video file or folder of frames')
    source.add_argument('--batch', help='a JSON-lines file of requests')
    parser.add_argument('--prompt', help='the question / instruction (with --image / --video)')
    parser.add_argument('--out', default='work_dirs/infer', help='output folder')
    return parser.parse_args()


@cli_main
def main() -> None:
    args = parse_args()
    if args.batch and args.prompt:
        raise UserError('--prompt goes with --image / --video; a --batch file has one per line')
    if not args.batch and not (args.prompt or '').strip():
        raise UserError('--prompt is required (and not empty) with --image / --video')
    from ullava.apis import infer
    requests = infer.read_batch(args.batch) if args.batch else [
        {('image' if args.image else 'video'): args.image or args.video, 'prompt': args.prompt}]
    if not args.batch:  # a bad input fails now, not after the model has loaded
        read = infer.read_image_file if args.image else infer.read_first_frame
        read(args.image or args.video)
    inferencer = infer.load_inferencer(args.config, args.checkpoint, args.device,
                                       args.cfg_options)
    records = infer.run_batch(inferencer, requests, args.out, progress=bool(args.batch))
    if not args.batch:
        record = records[0]
        if record['error']:
            raise UserError(record['error'])
        print(f"answer: {record['text']}")
        for path in record['masks'] + ([record['overlay']] if record['overlay'] else []):
            print(f'wrote {path}')
        return
    failed = sum(r['error'] is not None for r in records)
    results = osp.join(args.out, 'results.jsonl')
    print(f'{len(records)} requests, {failed} failed; results in {results}')


if __name__ == '__main__':
    main()
