"""Visual question answering: standard VQAv2 accuracy and exact match."""
import re
from collections import Counter
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from ullava.registry import METRICS
from ._utils import get_field

# The rules of the official VQA evaluation script (vqaEval.py), written compactly.
_PUNCT = list(';/[]"{}()=+\\_-><@`,?!')
_COMMA_IN_NUMBER = re.compile(r'(\d)(,)(\d)')
_PERIOD = re.compile(r'\.(?!\d)')  # a period not followed by a digit ("1.5" keeps its)
_NUMBERS = dict(none='0', zero='0', one='1', two='2', three='3', four='4', five='5', six='6',
                seven='7', eight='8', nine='9', ten='10')
_ARTICLES = {'a', 'an', 'the'}
# Contractions written without the apostrophe -> with it. Forms that are also ordinary
# words ("its", "well", "were", "ill", "shed", "id", "lets", "hell") are left out, as the
# official table does.
_CONTRACTIONS = {c.replace("'", ''): c for c in (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't "
    "hasn't haven't he'd he's how'd how'll how's isn't it'd it'll "
    "ma'am mightn't might've mustn't must've needn't not've o'clock oughtn't shan't "
    "she'd've she'll she's should've shouldn't shouldn't've somebody'd someone'd "
    "someone'll someone's something'd that's there'd there're there's they'd they'll "
    "they're they've wasn't we'd've we've weren't what'll what're what's what've "
    "when's where'd where's where've who'd who'll who's who've why'll why're why's "
    "won't would've wouldn't wouldn't've y'all you'd you'll you're you've").split()}


def normalize_answer(text: str) -> str:
    """Normalise an answer as the official VQA eval script does: punctuation, then
    lowercase, number words -> digits, articles dropped, contractions restored."""
    text = str(text).replace('\n', ' ').replace('\t', ' ').strip()
    # Punctuation touching a space (or any text with "1,000"-style numbers) is deleted,
    # otherwise replaced by a space, so "black/white" -> "black white".
    glue = bool(_COMMA_IN_NUMBER.search(text))
    for p in _PUNCT:
        if glue or p + ' ' in text or ' ' + p in text:
            text = text.replace(p, '')
        else:
            text = text.replace(p, ' ')
    text = _PERIOD.sub('', text)
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    return ' '.join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """VQAv2 accuracy of one (already normalised) prediction.

    With several annotators: mean over the leave-one-out subsets (10 choose 9 for VQAv2)
    of min(#subset answers equal to pred / 3, 1). With one GT answer: exact match.
    """
    if len(gt_answers) == 1:
        return float(pred == gt_answers[0])
    hits = [a == pred for a in gt_answers]
    total = sum(hits)
    return float(np.mean([min((total - h) / 3.0, 1.0) for h in hits]))


@METRICS.register_module()
class VQAMetric(BaseMetric):
    """VQAv2 accuracy (``accuracy``) and ``exact_match`` (normalised prediction equals the
    most common normalised GT answer), both fractions in [0, 1].

    Unlike the official script, which only strips punctuation from GT answers, GT answers
    here get the full normalisation too: our annotations are not guaranteed to be
    pre-normalised like VQAv2's, and normalising an already-normal answer is a no-op.
    """

    default_prefix: Optional[str] = ''  # keys unprefixed ('' also silences MMEngine's warning)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = normalize_answer(get_field(sample, 'pred_text', 'VQAMetric'))
            gts: List[str] = get_field(sample, 'gt_answers', 'VQAMetric')
            gts = [gts] if isinstance(gts, str) else list(gts)
            if not gts:
                raise ValueError('VQAMetric: gt_answers is empty')
            gts = [normalize_answer(a) for a in gts]
            top = Counter(gts).most_common(1)[0][0]
            self.results.append((vqa_accuracy(pred, gts), float(pred == top)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if not results:
            raise ValueError('VQAMetric: no answers were processed')
        acc, em = np.asarray(results, dtype=np.float64).T
        return {'accuracy': float(acc.mean()), 'exact_match': float(em.mean())}
