"""Text derived exactly from a scene: referring expressions, captions, QA pairs.

Referring expressions follow one small grammar, so they can be parsed back
(:func:`parse_expression`) and checked against the scene (:func:`resolve`)::

    expr     := simple [position | relation simple]
    simple   := "the" [size] [colour] (kind | "shape")
    position := "on the left" | "on the right" | "at the top" | "at the bottom"
    relation := "left of" | "right of" | "above" | "below"

Relations and positions compare shape centres with a margin of
``RELATION_MARGIN`` times the image side, so "left of" is never a coin flip
between near-aligned shapes. A position picks, among the shapes that fit the
simple part, the one beyond all the others by that margin ("the red circle on
the left" of two red circles). An expression is unambiguous when it resolves
to exactly one shape.

Salient rule: the salient object is the shape with the most visible pixels,
and a scene is used for salient segmentation only if that area is at least
``SALIENT_MARGIN`` times the runner-up's (a lone shape always qualifies).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ullava.demo.world import COLOURS, KINDS, SIZES, Scene, Shape, Video

RELATION_MARGIN = 0.08
SALIENT_MARGIN = 1.5
MAX_SENTENCES = 3
RELATIONS = ('left of', 'right of', 'above', 'below')
# Position phrase -> the relation its shape has to every other candidate.
POSITIONS = {'on the left': 'left of', 'on the right': 'right of', 'at the top': 'above', 'at the bottom': 'below'}
# Attribute sets tried for a plain description, most natural first.
SIMPLE_FORMS = (('colour', 'kind'), ('kind',), ('size', 'colour', 'kind'), ('colour',), ('size', 'kind'))
MOTION = {'right': 'moves to the right', 'left': 'moves to the left', 'up': 'moves up', 'down': 'moves down'}


@dataclass(frozen=True)
class Description:
    """Attributes a shape must have, optionally related to a unique anchor."""

    kind: Optional[str] = None
    colour: Optional[str] = None
    size: Optional[str] = None
    relation: Optional[str] = None
    anchor: Optional['Description'] = None
    position: Optional[str] = None  # key of POSITIONS

    def text(self) -> str:
        words = ['the'] + [w for w in (self.size, self.colour) if w] + [self.kind or 'shape']
        if self.position:
            words.append(self.position)
        elif self.relation and self.anchor:
            words += [self.relation, self.anchor.text()]
        return ' '.join(words)


def describe(shape: Shape, form: tuple[str, ...]) -> Description:
    """The description of ``shape`` that keeps only the attributes in ``form``."""
    return Description(**{a: getattr(shape, a) for a in form})


def relation_holds(relation: str, a: Shape, b: Shape, image_size: int) -> bool:
    """Whether ``a`` is ``relation`` ``b``, by centres with a clear margin."""
    margin = RELATION_MARGIN * image_size
    (ax, ay), (bx, by) = a.centre, b.centre
    return {'left of': ax < bx - margin, 'right of': ax > bx + margin,
            'above': ay < by - margin, 'below': ay > by + margin}[relation]


def resolve(desc: Description, scene: Scene) -> list[int]:
    """Indices of the scene's shapes that ``desc`` fits (anchor must be unique)."""
    hits = [i for i, s in enumerate(scene.shapes)
            if all(v is None or getattr(s, a) == v
                   for a, v in (('kind', desc.kind), ('colour', desc.colour), ('size', desc.size)))]
    if desc.position:
        rel = POSITIONS[desc.position]
        return [i for i in hits if all(relation_holds(rel, scene.shapes[i], scene.shapes[j], scene.image_size)
                                       for j in hits if j != i)]
    if desc.relation is None or desc.anchor is None:
        return hits
    anchors = resolve(desc.anchor, scene)
    if len(anchors) != 1:
        return []
    anchor = scene.shapes[anchors[0]]
    return [i for i in hits if i != anchors[0]
            and relation_holds(desc.relation, scene.shapes[i], anchor, scene.image_size)]


def parse_expression(text: str) -> Description:
    """Inverse of :meth:`Description.text` for the grammar in the module doc."""
    tokens = text.split()

    def simple(pos: int) -> tuple[Description, int]:
        if tokens[pos] != 'the':
            raise ValueError(f'expected "the" in {text!r}')
        pos += 1
        size = tokens[pos] if tokens[pos] in SIZES else None
        pos += size is not None
        colour = tokens[pos] if tokens[pos] in COLOURS else None
        pos += colour is not None
        noun = tokens[pos]
        if noun not in KINDS and noun != 'shape':
            raise ValueError(f'unknown noun {noun!r} in {text!r}')
        return Description(noun if noun in KINDS else None, colour, size), pos + 1

    desc, pos = simple(0)
    if pos == len(tokens):
        return desc
    position = ' '.join(tokens[pos:])
    if position in POSITIONS:
        return Description(desc.kind, desc.colour, desc.size, position=position)
    relation = tokens[pos] if tokens[pos] in ('above', 'below') else ' '.join(tokens[pos:pos + 2])
    if relation not in RELATIONS:
        raise ValueError(f'unknown relation in {text!r}')
    anchor, end = simple(pos + len(relation.split()))
    if end != len(tokens):
        raise ValueError(f'trailing words in {text!r}')
    return Description(desc.kind, desc.colour, desc.size, relation, anchor)


def unique_simple(scene: Scene, index: int) -> list[Description]:
    """Plain descriptions that pick out shape ``index`` alone, in SIMPLE_FORMS order."""
    shape = scene.shapes[index]
    found = [describe(shape, f) for f in SIMPLE_FORMS]
    return [d for d in found if resolve(d, scene) == [index]]


def referring_expressions(scene: Scene, index: int, rng: np.random.Generator) -> list[str]:
    """Up to MAX_SENTENCES unambiguous phrases for one shape; [] when none exists.

    The first sentence is the most natural one (plain, then positional, then
    relational); the rest are drawn from the other unambiguous phrases.
    """
    shape = scene.shapes[index]
    found = unique_simple(scene, index)
    for form in (('kind',), ('colour', 'kind'), ('size', 'colour', 'kind')):
        base = describe(shape, form)
        if len(resolve(base, scene)) > 1:  # a position only where the plain phrase is ambiguous
            for position in POSITIONS:
                d = Description(base.kind, base.colour, base.size, position=position)
                if resolve(d, scene) == [index]:
                    found.append(d)
    for j in range(len(scene.shapes)):
        anchor_descs = unique_simple(scene, j) if j != index else []
        if not anchor_descs:
            continue
        for relation in RELATIONS:
            for form in (('kind',), ('colour', 'kind')):
                d = describe(shape, form)
                d = Description(d.kind, d.colour, None, relation, anchor_descs[0])
                if resolve(d, scene) == [index]:
                    found.append(d)
                    break  # the shorter target phrase is enough
    texts = list(dict.fromkeys(d.text() for d in found))
    if len(texts) <= MAX_SENTENCES:
        return texts
    rest = [texts[i] for i in sorted(rng.choice(np.arange(1, len(texts)), MAX_SENTENCES - 1, replace=False))]
    return texts[:1] + rest


def look(shape: Shape) -> str:
    """'large red circle'."""
    return f'{shape.size} {shape.colour} {shape.kind}'


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]


def caption(scene: Scene) -> str:
    """Shapes left to right: 'a large red circle and a small blue square on a striped background'."""
    shapes = sorted(scene.shapes, key=lambda s: s.centre[0])
    return f'{_join(["a " + look(s) for s in shapes])} on a {scene.background} background'


def video_caption(video: Video) -> str:
    """'a large red circle moves to the right and a small blue square moves up'."""
    return ' and '.join(f'a {m.size} {m.colour} {m.kind} {MOTION[m.direction]}' for m in video.movers)


def salient_index(scene: Scene) -> Optional[int]:
    """The largest shape, or None when it does not beat the runner-up by SALIENT_MARGIN."""
    areas = [s.area for s in scene.shapes]
    if not areas:
        return None
    order = sorted(range(len(areas)), key=lambda i: -areas[i])
    if len(areas) > 1 and areas[order[0]] < SALIENT_MARGIN * areas[order[1]]:
        return None
    return order[0]


def salient_reason(scene: Scene, index: int) -> str:
    """Why the salient shape stands out, in words."""
    name = look(scene.shapes[index])
    if len(scene.shapes) == 1:
        return f'The {name} stands out because it is the only shape in the image.'
    return (f'The {name} stands out because it is the largest of the {len(scene.shapes)} shapes '
            f'on the {scene.background} background.')


def derive_qa(scene: Scene, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(question, answer, VQAv2 answer_type) pairs, all exact; order shuffled by ``rng``."""
    shapes, size = scene.shapes, scene.image_size
    qa = [('How many shapes are there?', str(len(shapes)), 'number')]
    kind = KINDS[int(rng.integers(len(KINDS)))]
    qa.append((f'How many {kind}s are there?', str(sum(s.kind == kind for s in shapes)), 'number'))
    present = sorted({(s.colour, s.kind) for s in shapes})
    absent = [(c, k) for c in COLOURS for k in KINDS if (c, k) not in present]
    ask_present = bool(rng.random() < 0.5)
    pool = present if ask_present else absent
    colour, kind = pool[int(rng.integers(len(pool)))]
    qa.append((f'Is there a {colour} {kind}?', 'yes' if ask_present else 'no', 'yes/no'))

    def pick(options: list) -> Optional[object]:
        return options[int(rng.integers(len(options)))] if options else None

    solo_kind = pick([s for s in shapes if sum(t.kind == s.kind for t in shapes) == 1])
    if solo_kind:
        qa.append((f'What colour is the {solo_kind.kind}?', solo_kind.colour, 'other'))
    solo_colour = pick([s for s in shapes if sum(t.colour == s.colour for t in shapes) == 1])
    if solo_colour:
        qa.append((f'What shape is the {solo_colour.colour} object?', solo_colour.kind, 'other'))
    named = [(i, unique_simple(scene, i)) for i in range(len(shapes))]
    named = [(i, d[0]) for i, d in named if d]
    solo_look = pick([(i, d) for i, d in named if d.kind and d.colour and d.size is None])
    if solo_look:
        qa.append((f'Is {solo_look[1].text()} small or large?', shapes[solo_look[0]].size, 'other'))
    pairs = [(a, b) for a in named for b in named if a[0] != b[0]]
    for axis, (neg, pos), word in ((0, ('left', 'right'), 'left or right of'), (1, ('above', 'below'), 'above or below')):
        rel = neg + ' of' if axis == 0 else neg
        options = [(a, b) for a, b in pairs
                   if abs(shapes[a[0]].centre[axis] - shapes[b[0]].centre[axis]) > RELATION_MARGIN * size]
        chosen = pick(options)
        if chosen:
            (ia, da), (ib, db) = chosen
            answer = neg if relation_holds(rel, shapes[ia], shapes[ib], size) else pos
            qa.append((f'Is {da.text()} {word} {db.text()}?', answer, 'other'))
    order = rng.permutation(len(qa))
    return [qa[i] for i in order]


# Kinds of held-out prompts, to report scores by kind (bench/diagnose_demo.py, predictions.png).
QUESTION_KINDS = ('How many shapes', 'How many', 'Is there', 'What colour', 'What shape',
                  'small or large', 'left or right', 'above or below')


def expression_kind(prompt: str) -> str:
    """'plain', 'positional' or 'relational': the grammar's kind of a referring expression in a
    templated prompt."""
    if any(p in prompt for p in POSITIONS):
        return 'positional'
    return 'relational' if any(f' {r} ' in prompt for r in RELATIONS) else 'plain'


def question_kind(prompt: str) -> str:
    """The kind of a VQA question (its template's opening words)."""
    return next((q for q in QUESTION_KINDS if q in prompt), 'other')
