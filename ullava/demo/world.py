"""A deterministic procedural world of coloured shapes on textured backgrounds.

Every scene is drawn from one ``numpy.random.Generator``; :func:`item_rng`
derives it from ``default_rng([seed, split_id, stream_id, index])`` so an item
can be rebuilt alone (tests do this) and train/val never share a scene.

Geometry conventions (used by every writer):

* pixel ``(x, y)`` is column ``x``, row ``y``; its centre sits at integer
  coordinates, and a pixel belongs to a shape when its centre is inside it.
* no anti-aliasing: a shape's visible pixels hold exactly its colour.
* shapes are painted in order; a shape's ``mask`` holds its VISIBLE pixels
  (later shapes occlude earlier ones). The generator places shapes without
  overlap, but :func:`render_scene` handles overlap for any caller.
* ``Shape.box`` is ``(x1, y1, x2, y2)`` with INCLUSIVE pixel indices of the
  mask's tight box; COCO xywh is then ``(x1, y1, x2 - x1 + 1, y2 - y1 + 1)``,
  the same as ``pycocotools.mask.toBbox`` of the mask's RLE.

CLI: ``python -m ullava.demo.world OUT_DIR --num-images N --seed S``.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

KINDS: tuple[str, ...] = ('circle', 'square', 'triangle', 'star')
# Semantic class ids: 0 is background, kinds follow in KINDS order.
CLASSES: tuple[str, ...] = ('background',) + KINDS
COLOURS: dict[str, tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 170, 60),
    'blue': (40, 90, 220),
    'yellow': (235, 200, 30),
}
SIZES: tuple[str, ...] = ('small', 'large')
BACKGROUNDS: tuple[str, ...] = ('noisy', 'striped', 'gradient')
# Nominal radius as a fraction of the image side; jittered by +-10 %.
SIZE_RADIUS: dict[str, float] = {'small': 0.10, 'large': 0.17}
# Circumradius / nominal radius: the disc that placement keeps disjoint.
EXTENT: dict[str, float] = {'circle': 1.0, 'square': 1.28, 'triangle': 1.3, 'star': 1.3}
GAP = 2.0  # pixels between the discs of two shapes, so masks never touch
DUPLICATE_P = 0.25  # chance a shape repeats an earlier colour+kind (needs size/relational refs)
DIRECTIONS: dict[str, tuple[int, int]] = {'right': (1, 0), 'left': (-1, 0), 'up': (0, -1), 'down': (0, 1)}
NUM_FRAMES = 8
SPLIT_IDS: dict[str, int] = {'train': 0, 'val': 1}
STREAM_IDS: dict[str, int] = {'image': 0, 'video': 1}


@dataclass(frozen=True)
class ShapeSpec:
    """What to draw: a shape before rasterisation."""

    kind: str
    colour: str
    size: str
    centre: tuple[float, float]  # (x, y) in pixels
    radius: float  # nominal radius in pixels

    @property
    def extent(self) -> float:
        """Radius of the disc that contains the whole shape."""
        return EXTENT[self.kind] * self.radius


@dataclass
class Shape:
    """A drawn shape: its attributes, visible mask and tight inclusive box."""

    kind: str
    colour: str
    size: str
    centre: tuple[float, float]
    radius: float
    mask: np.ndarray  # bool (H, W): visible pixels only
    box: tuple[int, int, int, int]  # x1, y1, x2, y2, inclusive

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLOURS[self.colour]

    @property
    def class_id(self) -> int:
        return CLASSES.index(self.kind)


@dataclass
class Scene:
    """A rendered image and the shapes in it (painting order)."""

    shapes: list[Shape]
    image: np.ndarray  # uint8 (H, W, 3) RGB
    background: str

    @property
    def image_size(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class Mover:
    """A shape that moves linearly through a video."""

    kind: str
    colour: str
    size: str
    direction: str  # key of DIRECTIONS


@dataclass
class Video:
    """``NUM_FRAMES`` scenes of the same movers on one background."""

    frames: list[Scene]
    movers: list[Mover]
    background: str
    caption: str = field(default='')


def item_rng(seed: int, split: str, stream: str, index: int) -> np.random.Generator:
    """The generator of one item; the split id keeps train and val apart."""
    return np.random.default_rng([seed, SPLIT_IDS[split], STREAM_IDS[stream], index])


def shape_mask(kind: str, centre: tuple[float, float], radius: float, size: int) -> np.ndarray:
    """Rasterise one shape (full, unoccluded) as a bool (size, size) mask."""
    cx, cy = centre
    if kind in ('circle', 'square'):
        yy, xx = np.mgrid[:size, :size]
        if kind == 'circle':
            return (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2
        half = 0.9 * radius  # keeps a square's area close to a circle's
        return (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
    if kind == 'triangle':
        angles = np.deg2rad([-90.0, 30.0, 150.0])  # points up (y grows down)
        radii = np.full(3, EXTENT['triangle'] * radius)
    elif kind == 'star':
        angles = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, EXTENT['star'] * radius, 0.5 * radius)
    else:
        raise ValueError(f'unknown kind {kind!r}')
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    canvas = np.zeros((size, size), np.uint8)
    # 4 fractional bits keep sub-pixel vertices; LINE_8 means no anti-aliasing.
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive (x1, y1, x2, y2) of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def make_background(rng: np.random.Generator, size: int) -> tuple[str, np.ndarray]:
    """A light, low-contrast grey texture, so saturated shapes stand out."""
    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    base = float(rng.integers(190, 226))
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    if name == 'noisy':
        grey = base + rng.normal(0.0, 6.0, (size, size))
    elif name == 'striped':
        width = int(rng.integers(2, 5))
        coord = (xx, yy, xx + yy)[int(rng.integers(3))]
        grey = base - 16.0 * ((coord // width) % 2)
    else:
        angle = rng.uniform(0.0, 2 * math.pi)
        proj = xx * math.cos(angle) + yy * math.sin(angle)
        grey = base - 35.0 * (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
    grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
    return name, np.repeat(grey[:, :, None], 3, axis=2)


def render_scene(specs: Sequence[ShapeSpec], background: np.ndarray, background_name: str = 'plain') -> Scene:
    """Paint ``specs`` in order over a copy of ``background``.

    A shape's mask is what stays visible after later shapes are painted;
    shapes left with no visible pixel are dropped from the scene.
    """
    size = background.shape[1]
    image = background.copy()
    full = [shape_mask(s.kind, s.centre, s.radius, size) for s in specs]
    covered = np.zeros(background.shape[:2], bool)
    visible: list[np.ndarray] = [covered] * len(specs)
    for i in range(len(specs) - 1, -1, -1):  # back to front: what is painted later hides
        visible[i] = full[i] & ~covered
        covered |= full[i]
    shapes = []
    for spec, full_mask, vis in zip(specs, full, visible):
        image[full_mask] = COLOURS[spec.colour]
        if vis.any():
            shapes.append(Shape(spec.kind, spec.colour, spec.size, spec.centre, spec.radius,
                                vis, tight_box(vis)))
    return Scene(shapes, image, background_name)


def _random_look(rng: np.random.Generator, earlier: Sequence[ShapeSpec]) -> tuple[str, str, str, float]:
    """Kind, colour, size and jitter of a new shape; sometimes copies an earlier look."""
    if earlier and rng.random() < DUPLICATE_P:
        prev = earlier[int(rng.integers(len(earlier)))]
        kind, colour = prev.kind, prev.colour
    else:
        kind = KINDS[int(rng.integers(len(KINDS)))]
        colour = tuple(COLOURS)[int(rng.integers(len(COLOURS)))]
    size = SIZES[int(rng.integers(len(SIZES)))]
    return kind, colour, size, float(rng.uniform(0.9, 1.1))


def make_scene(rng: np.random.Generator, image_size: int = 64, max_shapes: int = 3) -> Scene:
    """1..max_shapes non-overlapping shapes on a random background."""
    bg_name, bg = make_background(rng, image_size)
    specs: list[ShapeSpec] = []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind, colour, size, jitter = _random_look(rng, specs)
        radius = SIZE_RADIUS[size] * image_size * jitter
        ext = EXTENT[kind] * radius
        for _try in range(30):
            centre = tuple(float(v) for v in rng.uniform(ext + 1, image_size - 2 - ext, size=2))
            if all(math.dist(centre, s.centre) > ext + s.extent + GAP for s in specs):
                specs.append(ShapeSpec(kind, colour, size, centre, radius))
                break  # a shape that finds no room is simply left out
    return render_scene(specs, bg, bg_name)


def _mover_path(rng: np.random.Generator, mover: Mover, radius: float, size: int,
                num_frames: int) -> list[tuple[float, float]]:
    """Centres of a shape crossing 50-90 % of its free travel, inside the image."""
    ext = EXTENT[mover.kind] * radius
    lo, hi = ext + 1, size - 2 - ext
    dist = rng.uniform(0.5, 0.9) * (hi - lo)
    dx, dy = DIRECTIONS[mover.direction]
    start = []
    for d in (dx, dy):  # along the motion the start leaves room for the travel
        start.append(rng.uniform(lo + dist, hi) if d < 0 else rng.uniform(lo, hi - dist if d > 0 else hi))
    steps = np.linspace(0.0, dist, num_frames)
    return [(float(start[0] + dx * t), float(start[1] + dy * t)) for t in steps]


def make_video(rng: np.random.Generator, image_size: int = 64, num_frames: int = NUM_FRAMES) -> Video:
    """1-2 shapes of distinct looks moving linearly without ever overlapping."""
    from ullava.demo.language import video_caption  # late: language imports this module

    bg_name, bg = make_background(rng, image_size)
    wanted = int(rng.integers(1, 3))
    for attempt in range(50):
        n = wanted if attempt < 49 else 1  # one mover always fits
        movers, radii, paths = [], [], []
        for _ in range(n):
            kind, colour, size, jitter = _random_look(rng, [])
            if any((m.kind, m.colour) == (kind, colour) for m in movers):
                break
            mover = Mover(kind, colour, size, tuple(DIRECTIONS)[int(rng.integers(len(DIRECTIONS)))])
            radius = SIZE_RADIUS[size] * image_size * jitter
            movers.append(mover)
            radii.append(radius)
            paths.append(_mover_path(rng, mover, radius, image_size, num_frames))
        if len(movers) == n and _paths_apart(movers, radii, paths):
            break
    frames = [render_scene([ShapeSpec(m.kind, m.colour, m.size, p[t], r)
                            for m, r, p in zip(movers, radii, paths)], bg, bg_name)
              for t in range(num_frames)]
    video = Video(frames, movers, bg_name)
    video.caption = video_caption(video)
    return video


def _paths_apart(movers: Sequence[Mover], radii: Sequence[float],
                 paths: Sequence[Sequence[tuple[float, float]]]) -> bool:
    """True when no two movers' discs come within GAP in any frame."""
    for i in range(len(movers)):
        for j in range(i + 1, len(movers)):
            reach = EXTENT[movers[i].kind] * radii[i] + EXTENT[movers[j].kind] * radii[j] + GAP
            if any(math.dist(a, b) <= reach for a, b in zip(paths[i], paths[j])):
                return False
    return True


def main(argv: Sequence[str] | None = None) -> None:
    """Write both splits: ``OUT_DIR/train`` and ``OUT_DIR/val``."""
    from ullava.demo.writers import generate_world  # late: writers imports this module

    parser = argparse.ArgumentParser(description='Write the procedural shapes world in real dataset formats.')
    parser.add_argument('out_dir')
    parser.add_argument('--num-images', type=int, default=2000, help='train images')
    parser.add_argument('--num-videos', type=int, default=None, help='train videos (default: images // 10)')
    parser.add_argument('--num-val-images', type=int, default=None, help='default: images // 10')
    parser.add_argument('--num-val-videos', type=int, default=None, help='default: val images // 10')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-size', type=int, default=64)
    args = parser.parse_args(argv)
    n_videos = args.num_videos if args.num_videos is not None else args.num_images // 10
    n_val = args.num_val_images if args.num_val_images is not None else max(1, args.num_images // 10)
    n_val_videos = args.num_val_videos if args.num_val_videos is not None else max(1, n_val // 10)
    for split, n_img, n_vid in (('train', args.num_images, n_videos), ('val', n_val, n_val_videos)):
        start = time.perf_counter()
        meta = generate_world(args.out_dir, split, num_images=n_img, num_videos=n_vid, seed=args.seed,
                              image_size=args.image_size, progress=True)
        print(f'{split}: {meta["counts"]} in {time.perf_counter() - start:.1f}s', flush=True)


if __name__ == '__main__':
    main()
