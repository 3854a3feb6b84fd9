"""A demo config whose generation is biased to answer exactly ``[SEG]`` (then end-of-sentence).

Random weights rarely say [SEG]; with this bias masks always come back, so the mask and overlay
paths are exercised. The token ids come from the tiny tokenizer at run time.
"""
from pathlib import Path

DEMO_CFG = Path(__file__).resolve().parents[2] / 'configs/demo/ullava_tiny_demo.py'


def write_seg_config(path: Path) -> Path:
    """Write the biased config to ``path`` and return it."""
    from ullava.models.language import build_tokenizer
    tok = build_tokenizer(tiny=True)
    seg, eos = tok.convert_tokens_to_ids('[SEG]'), tok.eos_token_id
    path.write_text(f"_base_ = ['{DEMO_CFG}']\n"
                    f"model = dict(generation=dict(sequence_bias=[[[{seg}], 50.0], "
                    f"[[{seg}, {eos}], 100.0]]))\n")
    return path
