"""CaptionMetric's tokenisation: the COCO server's PTB tokenizer when Java is there, the regex
stand-in (said so in the results) when it is not."""
import json
import shutil

import pytest

from ullava.evaluation.metrics import CaptionMetric
from ullava.evaluation.metrics import caption_metric
from ullava.utils import UserError

needs_java = pytest.mark.skipif(shutil.which('java') is None,
                                reason='the PTB tokenizer is a Java jar; no java here')

# Captions on which PTB and the regex disagree: PTB splits clitics ("dog 's", "is n't") and keeps
# words with inner punctuation whole ("black-and-white", "3.5"); the regex does the opposite.
TEXT = "A black-and-white dog's ball isn't 3.5 cm!"
PTB = "a black-and-white dog 's ball is n't 3.5 cm"
REGEX = "a black and white dog's ball isn't 3 5 cm"


def _run(metric, *batches):
    for batch in batches:
        metric.process({}, batch)
    return metric.compute_metrics(metric.results)


def _no_java(monkeypatch):
    monkeypatch.setattr(caption_metric, 'java_available', lambda: False)


def _samples():
    """Predictions that equal their references only once both are PTB-tokenised."""
    return [dict(img_id=0, pred_text="The dog's ball.", gt_captions=["the dog 's ball"]),
            dict(img_id=1, pred_text="It isn't red!", gt_captions=["it is n't red"])]


def test_regex_tokenize():
    assert caption_metric.regex_tokenize(TEXT) == REGEX
    assert caption_metric.regex_tokenize("  'Quoted'  words\n") == 'quoted words'


@needs_java
def test_ptb_tokenize_keeps_every_caption_in_place():
    out = caption_metric.ptb_tokenize({'a': [TEXT, ''], 7: ['Two\nlines.', '   ', 'Ok.']})
    assert out == {'a': [PTB, ''], 7: ['two lines', '', 'ok']}


@needs_java
def test_ptb_is_used_when_java_is_present():
    metric = CaptionMetric(meteor=False)
    assert metric.tokenizer == 'ptb'
    assert metric.tokenize({0: [TEXT]}) == {0: [PTB]}
    out = _run(metric, _samples())
    # PTB turns each prediction into its reference: perfect scores.
    assert out['tokenizer'] == 'ptb'
    assert out['BLEU_4'] == pytest.approx(1.0, abs=1e-6)
    assert out['CIDEr'] == pytest.approx(10.0)


def test_regex_fallback_without_java(monkeypatch):
    _no_java(monkeypatch)
    metric = CaptionMetric()
    assert metric.tokenizer == 'regex' and not metric.meteor
    out = _run(metric, _samples())
    # "the dog's ball" vs "the dog s ball": no 4-gram in common, the prediction is not perfect.
    assert out['tokenizer'] == 'regex' and 'METEOR' not in out
    assert out['BLEU_4'] < 0.5 and out['CIDEr'] < 10.0


def test_tokenizer_option(monkeypatch):
    assert CaptionMetric(tokenizer='regex').tokenizer == 'regex'
    with pytest.raises(UserError, match="tokenizer must be one of .*'spacy'"):
        CaptionMetric(tokenizer='spacy')
    _no_java(monkeypatch)
    with pytest.raises(UserError, match="tokenizer='ptb' needs java"):
        CaptionMetric(tokenizer='ptb')


@needs_java
def test_ptb_failure_is_reported(monkeypatch):
    """pycocoevalcap ignores the jar's exit status; a short answer must not misalign captions."""
    from pycocoevalcap.tokenizer import ptbtokenizer
    monkeypatch.setattr(ptbtokenizer.PTBTokenizer, 'tokenize', lambda self, caps: {})
    with pytest.raises(RuntimeError, match='returned 0 of 4 captions'):
        _run(CaptionMetric(meteor=False), _samples())


def test_tokenizer_name_reaches_metrics_json(monkeypatch):
    """Through TaskMetric and MMEngine's Evaluator the string survives as ``<task>/tokenizer``,
    and tools/test.py's JSON dump keeps it."""
    from mmengine.evaluator import Evaluator
    _no_java(monkeypatch)  # the key is there either way; regex keeps this test Java-free
    from ullava.tasks.task_metric import TaskMetric
    evaluator = Evaluator([TaskMetric(task='caption', metric=dict(type='CaptionMetric'))])
    evaluator.process([dict(task='caption', **s) for s in _samples()], {})
    out = json.loads(json.dumps(evaluator.evaluate(2)))
    assert out['caption/tokenizer'] == 'regex'
    assert set(out) == {'caption/BLEU_4', 'caption/CIDEr', 'caption/tokenizer'}
