"""Which results/data-sample fields hold targets, and how each follows the image through resizing.

A head declares the target fields it consumes (``BaseHead.target_fields``: field -> kind); the
resize and pack transforms read them from here instead of a fixed list, so a plugin's head brings
its own targets without touching the transforms. Each kind has one derived field that
:class:`~ullava.datasets.transforms.ResizeForSAM` writes:

* ``'mask'``: bool [k,H,W] at the original size; ``<field>_sam`` is the same in the SAM frame;
* ``'box'``: xyxy pixels [k,4]; ``<field>_norm`` is xyxy in the centre-padded [0,1] square;
* ``'point'``: xy pixels [k,2]; ``<field>_norm`` is xy in the centre-padded [0,1] square;
* ``'map'``: a per-pixel map at the original size (read by metrics only, never resized).
"""
from __future__ import annotations

from ullava.utils import UserError

DERIVED = {'mask': '_sam', 'box': '_norm', 'point': '_norm', 'map': None}

# fields no head consumes but metrics read (semantic segmentation's label map)
_FIELDS: dict[str, str] = {'gt_sem_seg': 'map'}


def register_target_field(name: str, kind: str) -> None:
    """Declare ``name`` a target of ``kind`` (idempotent; a second, different kind is an error)."""
    if kind not in DERIVED:
        raise UserError(f'target field {name}: kind must be one of {sorted(DERIVED)}, got {kind!r}')
    if _FIELDS.get(name, kind) != kind:
        raise UserError(f'target field {name} is declared both {_FIELDS[name]!r} and {kind!r}')
    _FIELDS[name] = kind


def target_fields(kind: str | None = None) -> dict[str, str]:
    """Every declared target field (of ``kind``) -> its kind, the core heads' included."""
    from ullava.registry import HEADS
    HEADS.import_from_location()  # the core heads declare theirs on import
    return {k: v for k, v in _FIELDS.items() if kind is None or v == kind}


def packed_fields() -> tuple[str, ...]:
    """The fields a packed data sample carries: each target and its derived field."""
    names = []
    for name, kind in target_fields().items():
        names.append(name)
        if DERIVED[kind]:
            names.append(name + DERIVED[kind])
    return tuple(names)
