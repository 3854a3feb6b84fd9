"""Image captioning: BLEU-4, CIDEr-D (and METEOR) with the coco-caption scorers (pycocoevalcap).

Captions are tokenised as the COCO caption server does it: Stanford's PTB tokenizer
(pycocoevalcap's ``PTBTokenizer``, a Java jar) with lowercasing, punctuation tokens dropped.
Where no Java is installed we fall back to a regex approximation, and the results say which
one ran (key ``tokenizer``: ``'ptb'`` or ``'regex'``), so a score is never silently compared
across tokenizers.
"""
import re
import shutil
from typing import Dict, Hashable, List, Optional, Sequence, Union

from mmengine.evaluator import BaseMetric

from ullava.registry import METRICS
from ullava.utils import UserError
from ._utils import get_field

_NON_WORD = re.compile(r"[^a-z0-9' ]+")
TOKENIZERS = ('auto', 'ptb', 'regex')


def java_available() -> bool:
    """Whether ``java`` is on the PATH (the PTB tokenizer and METEOR are Java jars)."""
    return shutil.which('java') is not None


def regex_tokenize(text: str) -> str:
    """Lowercase, drop punctuation, collapse spaces: our stand-in for PTB when Java is absent.

    Written here because PTB itself needs Java. It differs from PTB on clitics ("dog's",
    "don't" stay one token; PTB splits "dog 's", "do n't") and on punctuation inside a word
    ("black-and-white", "3.5" are split here, PTB keeps them whole).
    """
    text = _NON_WORD.sub(' ', str(text).lower())
    return ' '.join(w.strip("'") for w in text.split() if w.strip("'"))


def ptb_tokenize(captions: Dict[Hashable, List[str]]) -> Dict[Hashable, List[str]]:
    """``{key: [caption, ...]}`` tokenised by pycocoevalcap's ``PTBTokenizer`` in one Java run.

    The jar reads one caption per line, so whitespace (line breaks included) is collapsed
    first, and empty captions are kept out of it (they tokenise to ''). The jar's exit status
    is not checked by pycocoevalcap: a short answer is caught here instead of misaligning
    captions and images.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    flat = {(key, i): ' '.join(str(c).split()) for key, caps in captions.items()
            for i, c in enumerate(caps)}
    todo = {k: [{'caption': c}] for k, c in flat.items() if c}
    try:
        done = PTBTokenizer().tokenize(todo) if todo else {}
    except OSError as err:  # e.g. a read-only site-packages: the jar's input file goes there
        raise RuntimeError(f'CaptionMetric: the PTB tokenizer could not run ({err}); use '
                           "tokenizer='regex' to score without it") from err
    if set(done) != set(todo):
        raise RuntimeError(f'CaptionMetric: the PTB tokenizer (java) returned {len(done)} of '
                           f"{len(todo)} captions; use tokenizer='regex' to score without it")
    return {key: [done[(key, i)][0] if (key, i) in done else '' for i in range(len(caps))]
            for key, caps in captions.items()}


@METRICS.register_module()
class CaptionMetric(BaseMetric):
    """Corpus BLEU-4 (closest reference length, brevity penalty) and CIDEr-D (1..4-grams,
    tf-idf from this split's references, clipped counts, Gaussian length penalty
    sigma = 6, x10), computed by pycocoevalcap's ``Bleu``/``Cider`` scorers exactly as
    the COCO caption server. Keys: ``BLEU_4``, ``CIDEr`` (CIDEr is not a fraction: 10 at
    best per image; a split of one image scores CIDEr 0, as every idf is log(1/1)), and
    ``tokenizer``: which tokenizer ran. One prediction per ``img_id``: a repeated id keeps
    its first sample.

    Args:
        meteor: METEOR runs pycocoevalcap's Java jar, so it needs ``java`` on the PATH;
            ``'auto'`` adds the ``METEOR`` key when Java is there. SPICE is not offered: its
            jar fetches Stanford CoreNLP models at first use, and nothing may be downloaded at
            run time.
        tokenizer: ``'ptb'`` (the COCO server's, needs Java), ``'regex'`` (see
            :func:`regex_tokenize`) or ``'auto'``: PTB when Java is there, else regex.
    """

    default_prefix: Optional[str] = ''  # keys unprefixed ('' also silences MMEngine's warning)

    def __init__(self, meteor: object = 'auto', tokenizer: str = 'auto', **kwargs) -> None:
        super().__init__(**kwargs)
        if tokenizer not in TOKENIZERS:
            raise UserError(f'CaptionMetric: tokenizer must be one of {TOKENIZERS}, '
                            f'got {tokenizer!r}')
        java = java_available()
        if tokenizer == 'ptb' and not java:
            raise UserError("CaptionMetric: tokenizer='ptb' needs java on the PATH "
                            "(install a JRE, or use tokenizer='regex')")
        self.tokenizer = ('ptb' if java else 'regex') if tokenizer == 'auto' else tokenizer
        self.meteor = java if meteor == 'auto' else bool(meteor)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        # raw text is kept: PTB runs once over the whole split (one JVM start, not one a batch)
        for sample in data_samples:
            pred = get_field(sample, 'pred_text', 'CaptionMetric')
            refs: List[str] = get_field(sample, 'gt_captions', 'CaptionMetric')
            refs = [refs] if isinstance(refs, str) else list(refs)
            img_id = get_field(sample, 'img_id', 'CaptionMetric')
            if not refs:
                raise ValueError(f'CaptionMetric: gt_captions of img_id {img_id!r} is empty')
            self.results.append((img_id, str(pred), [str(r) for r in refs]))

    def tokenize(self, captions: Dict[Hashable, List[str]]) -> Dict[Hashable, List[str]]:
        """Tokenise ``{key: [caption, ...]}`` with this metric's tokenizer."""
        if self.tokenizer == 'ptb':
            return ptb_tokenize(captions)
        return {key: [regex_tokenize(c) for c in caps] for key, caps in captions.items()}

    def compute_metrics(self, results: list) -> Dict[str, Union[float, str]]:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        if not results:
            raise ValueError('CaptionMetric: no captions were processed')
        captions = {}
        for img_id, pred, refs in results:
            captions.setdefault(('res', img_id), [pred])
            captions.setdefault(('gts', img_id), refs)
        tokens = self.tokenize(captions)  # predictions and references in one call
        ids = [key[1] for key in captions if key[0] == 'res']
        res = {i: tokens[('res', i)] for i in ids}
        gts = {i: tokens[('gts', i)] for i in ids}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, _ = Cider().compute_score(gts, res)
        metrics: Dict[str, Union[float, str]] = {'BLEU_4': float(bleu[3]),
                                                 'CIDEr': float(cider)}
        if self.meteor:
            from pycocoevalcap.meteor.meteor import Meteor
            metrics['METEOR'] = float(Meteor().compute_score(gts, res)[0])
        metrics['tokenizer'] = self.tokenizer
        return metrics
