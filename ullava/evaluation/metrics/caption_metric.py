"""Image captioning: BLEU-4 and CIDEr-D with the coco-caption scorers (pycocoevalcap)."""
import re
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from ullava.registry import METRICS
from ._utils import get_field

_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def tokenize(text: str) -> str:
    """Lowercase, drop punctuation, collapse spaces.

    coco-caption runs the Stanford PTB tokenizer, which needs Java; we approximate it in
    Python (it also lowercases and removes punctuation tokens). It differs only on
    possessives/contractions ("dog's" stays one token here, PTB splits off "'s").
    """
    text = _NON_WORD.sub(' ', str(text).lower())
    return ' '.join(w.strip("'") for w in text.split() if w.strip("'"))


@METRICS.register_module()
class CaptionMetric(BaseMetric):
    """Corpus BLEU-4 (closest reference length, brevity penalty) and CIDEr-D (1..4-grams,
    tf-idf from this split's references, clipped counts, Gaussian length penalty
    sigma = 6, x10), computed by pycocoevalcap's ``Bleu``/``Cider`` scorers exactly as
    the COCO caption server. Keys: ``BLEU_4``, ``CIDEr`` (CIDEr is not a fraction: 10 at
    best per image; a split of one image scores CIDEr 0, as every idf is log(1/1)).
    One prediction per ``img_id``: a repeated id keeps its first sample.

    ``meteor``: METEOR runs pycocoevalcap's Java jar, so it needs ``java`` on the PATH;
    ``'auto'`` adds the ``METEOR`` key when Java is there. SPICE is not offered: its jar fetches
    Stanford CoreNLP models at first use, and nothing may be downloaded at run time.
    """

    default_prefix: Optional[str] = ''  # keys unprefixed ('' also silences MMEngine's warning)

    def __init__(self, meteor: object = 'auto', **kwargs) -> None:
        super().__init__(**kwargs)
        import shutil
        self.meteor = shutil.which('java') is not None if meteor == 'auto' else bool(meteor)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = get_field(sample, 'pred_text', 'CaptionMetric')
            refs: List[str] = get_field(sample, 'gt_captions', 'CaptionMetric')
            refs = [refs] if isinstance(refs, str) else list(refs)
            img_id = get_field(sample, 'img_id', 'CaptionMetric')
            if not refs:
                raise ValueError(f'CaptionMetric: gt_captions of img_id {img_id!r} is empty')
            self.results.append((img_id, tokenize(pred), [tokenize(r) for r in refs]))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        if not results:
            raise ValueError('CaptionMetric: no captions were processed')
        res, gts = {}, {}
        for img_id, pred, refs in results:
            if img_id not in res:
                res[img_id], gts[img_id] = [pred], refs
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, _ = Cider().compute_score(gts, res)
        metrics = {'BLEU_4': float(bleu[3]), 'CIDEr': float(cider)}
        if self.meteor:
            from pycocoevalcap.meteor.meteor import Meteor
            metrics['METEOR'] = float(Meteor().compute_score(gts, res)[0])
        return metrics
