"""Procedural anomaly data: textures and objects with realistic defects and exact masks.

Five visually distinct domains (``wood``, ``fabric``, ``metal``, ``tiles``,
``pills``) and six defect kinds (``scratch``, ``crack``, ``hole``, ``stain``,
``missing``, ``color``). A defect changes pixels only inside its mask, and
(nearly) every pixel of its mask, so the mask is exact. Every image has its own
random stream derived from (seed, domain, split, kind, index): the same seed
gives the same bytes, and asking for more images keeps the earlier ones.

numpy + PIL only; a 256 px image takes a few milliseconds. Writers put the
images in MVTec AD layout (default), VisA layout, MVTec + ``meta.json``, the
generic folder layout, or a flat unlabelled "night archive" for scoring demos.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from vip2clip.errors import ConfigError
from vip2clip.storage import StorageConfig, is_remote, join, write_bytes

DOMAINS = ("wood", "fabric", "metal", "tiles", "pills")
DEFECTS = ("scratch", "crack", "hole", "stain", "missing", "color")
DatasetLayout = Literal["mvtec", "visa", "meta", "folder"]
LAYOUTS: tuple[DatasetLayout, ...] = ("mvtec", "visa", "meta", "folder")

PNG_COMPRESS_LEVEL = 3  # fast, still compact; PNG is lossless so masks stay exact
JPEG_QUALITY = 92
REMOTE_WRITERS = 8  # parallel uploads to object stores
REMOTE_IN_FLIGHT = 4 * REMOTE_WRITERS  # files rendered but not yet uploaded, at most
MIN_IMAGE_SIZE = 32
ARCHIVE_JPEG_SHARE = 0.3  # fraction of archive images written as JPEG
ARCHIVE_ASPECTS = (1.0, 0.75, 4.0 / 3.0)  # height / width of archive images
SCRATCH_DARK_ABOVE = 190.0  # mean grey level above which a scratch is drawn dark
MIN_DEFECT_PIXELS = 12  # a defect smaller than this is redrawn (e.g. clipped by the target)
MAX_DEFECT_TRIES = 8

Rgb = tuple[int, int, int]
FloatImage = np.ndarray  # (H, W, 3) float32 in [0, 255]
BoolMask = np.ndarray  # (H, W) bool


# --------------------------------------------------------------------------- noise


def _value_noise(rng: np.random.Generator, size: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth noise ``(size, size)`` in about [0, 1]: a random ``cells`` grid, bicubic-upsampled."""
    grid = rng.random(cells, dtype=np.float32)
    up = Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32)


def _fractal_noise(
    rng: np.random.Generator, size: int, base_cells: int, octaves: int
) -> np.ndarray:
    total = np.zeros((size, size), np.float32)
    weight = 1.0
    norm = 0.0
    for octave in range(octaves):
        cells = min(size, base_cells * 2**octave)
        total += weight * _value_noise(rng, size, (cells, cells))
        norm += weight
        weight *= 0.5
    return total / norm


def _colorize(intensity: np.ndarray, dark: Rgb, light: Rgb) -> FloatImage:
    """Map an intensity field in [0, 1] to colours between ``dark`` and ``light``."""
    t = np.clip(intensity, 0.0, 1.0)[..., None]
    lo = np.asarray(dark, np.float32)
    hi = np.asarray(light, np.float32)
    return lo + (hi - lo) * t


def _jitter(rng: np.random.Generator, color: Rgb, amount: int) -> Rgb:
    r, g, b = (int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)
    return (r, g, b)


# --------------------------------------------------------------------------- domains


@dataclass(frozen=True)
class Scene:
    """A defect-free image, what shows through where material is missing, and where
    defects may go (the whole image for textures, the objects for ``pills``)."""

    image: FloatImage
    substrate: Callable[[], FloatImage]  # rendered only when a defect needs it
    target: BoolMask


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = np.arange(size, dtype=np.float32) / size
    return np.meshgrid(axis, axis, indexing="xy")


def _full(size: int) -> BoolMask:
    return np.ones((size, size), bool)


def _backing(rng: np.random.Generator, size: int) -> FloatImage:
    """Dark backing material seen through missing pieces of a texture."""
    return _colorize(_value_noise(rng, size, (8, 8)), (18, 18, 22), (48, 46, 50))


def _lazy_backing(rng: np.random.Generator, size: int) -> Callable[[], FloatImage]:
    return lambda: _backing(rng, size)


def _wood(rng: np.random.Generator, size: int) -> Scene:
    x, y = _coords(size)
    warp = _fractal_noise(rng, size, 3, 3)
    rings = rng.uniform(7.0, 12.0)
    grain = 0.5 + 0.5 * np.sin(2 * math.pi * (rings * y + 1.8 * warp + 0.15 * x))
    fibre = _value_noise(rng, size, (size // 2, 4))  # fine streaks along the grain
    intensity = 0.75 * grain**2 + 0.25 * fibre
    dark = _jitter(rng, (112, 68, 34), 10)
    light = _jitter(rng, (214, 160, 104), 10)
    return Scene(_colorize(intensity, dark, light), _lazy_backing(rng, size), _full(size))


def _fabric(rng: np.random.Generator, size: int) -> Scene:
    x, y = _coords(size)
    threads = float(rng.integers(10, 16))
    over = ((np.floor(x * threads) + np.floor(y * threads)) % 2).astype(np.float32)
    warp_thread = np.abs(np.sin(math.pi * x * threads))
    weft_thread = np.abs(np.sin(math.pi * y * threads))
    weave = over * weft_thread + (1 - over) * warp_thread
    intensity = 0.2 + 0.65 * weave + 0.15 * _value_noise(rng, size, (size // 4, size // 4))
    dark = _jitter(rng, (26, 38, 82), 8)
    light = _jitter(rng, (112, 138, 200), 10)
    return Scene(_colorize(intensity, dark, light), _lazy_backing(rng, size), _full(size))


def _metal(rng: np.random.Generator, size: int) -> Scene:
    x, y = _coords(size)
    streaks = _value_noise(rng, size, (size // 2, 3))  # long horizontal brushing marks
    light_dir = rng.uniform(-1.0, 1.0)
    shading = 0.5 + 0.25 * (light_dir * x + (1 - abs(light_dir)) * y)
    intensity = 0.55 * shading + 0.45 * streaks
    tint = int(rng.integers(0, 8))
    dark = (118, 120, 124 + tint)
    light = (196, 198, 204 + tint)
    return Scene(_colorize(intensity, dark, light), _lazy_backing(rng, size), _full(size))


def _tiles(rng: np.random.Generator, size: int) -> Scene:
    per_side = int(rng.integers(3, 6))
    tile = size / per_side
    grout = max(2, size // 64)
    x_idx, y_idx = np.meshgrid(np.arange(size), np.arange(size), indexing="xy")
    in_grout = ((x_idx % tile) < grout) | ((y_idx % tile) < grout)
    shade = rng.uniform(0.7, 1.0, size=(per_side + 1, per_side + 1)).astype(np.float32)
    tile_shade = shade[(y_idx // tile).astype(int), (x_idx // tile).astype(int)]
    glaze = 0.85 * tile_shade + 0.15 * _value_noise(rng, size, (size // 8, size // 8))
    tiles = _colorize(glaze, (120, 170, 160), _jitter(rng, (214, 236, 228), 6))
    grout_color = _colorize(_value_noise(rng, size, (16, 16)), (96, 92, 84), (130, 126, 116))
    image = np.where(in_grout[..., None], grout_color, tiles)
    return Scene(image.astype(np.float32), _lazy_backing(rng, size), _full(size))


def _pills(rng: np.random.Generator, size: int) -> Scene:
    felt = _fractal_noise(rng, size, 6, 3)
    background = _colorize(felt, (24, 58, 34), (52, 96, 60))
    count = int(rng.integers(3, 6))
    label = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(label)
    slots = rng.permutation(9)[:count]  # 3 x 3 grid of places, so pills rarely overlap
    for slot in slots:
        cx = (slot % 3 + 0.5 + rng.uniform(-0.12, 0.12)) * size / 3
        cy = (slot // 3 + 0.5 + rng.uniform(-0.12, 0.12)) * size / 3
        draw.polygon(_capsule(cx, cy, size / 7.5, size / 15, rng.uniform(0, math.pi)), fill=255)
    target = np.asarray(label) > 0
    body = _colorize(
        0.8 + 0.2 * _value_noise(rng, size, (12, 12)), (200, 190, 170), (250, 246, 236)
    )
    image = np.where(target[..., None], body, background)
    return Scene(image.astype(np.float32), lambda: background, target)


def _capsule(
    cx: float, cy: float, half_length: float, radius: float, angle: float
) -> list[tuple[float, float]]:
    """Polygon of a pill (a stadium shape) centred at (cx, cy), rotated by ``angle``."""
    points: list[tuple[float, float]] = []
    for end, start in ((1.0, -math.pi / 2), (-1.0, math.pi / 2)):
        for step in range(13):
            theta = start + math.pi * step / 12
            px = end * (half_length - radius) + radius * math.cos(theta)
            py = radius * math.sin(theta)
            points.append(
                (
                    cx + px * math.cos(angle) - py * math.sin(angle),
                    cy + px * math.sin(angle) + py * math.cos(angle),
                )
            )
    return points


DOMAIN_RENDERERS: dict[str, Callable[[np.random.Generator, int], Scene]] = {
    "wood": _wood,
    "fabric": _fabric,
    "metal": _metal,
    "tiles": _tiles,
    "pills": _pills,
}


# --------------------------------------------------------------------------- defects


def _point_in(rng: np.random.Generator, target: BoolMask, margin: float) -> tuple[float, float]:
    """A random point of ``target``, away from the image border by ``margin`` x size."""
    size = target.shape[0]
    low, high = int(size * margin), int(size * (1 - margin))
    inner = np.zeros_like(target)
    inner[low:high, low:high] = target[low:high, low:high]
    ys, xs = np.nonzero(inner if inner.any() else target)
    pick = int(rng.integers(0, len(xs)))
    return float(xs[pick]), float(ys[pick])


def _path(
    rng: np.random.Generator, start: tuple[float, float], steps: int, step: float, turn: float
) -> list[tuple[float, float]]:
    angle = rng.uniform(0, 2 * math.pi)
    points = [start]
    for _ in range(steps):
        angle += rng.uniform(-turn, turn)
        x, y = points[-1]
        points.append((x + step * math.cos(angle), y + step * math.sin(angle)))
    return points


def _draw_mask(size: int, draw_fn: Callable[[ImageDraw.ImageDraw], None]) -> BoolMask:
    canvas = Image.new("L", (size, size), 0)
    draw_fn(ImageDraw.Draw(canvas))
    return np.asarray(canvas) > 0


def _blob(rng: np.random.Generator, target: BoolMask, radius: tuple[float, float]) -> BoolMask:
    """An irregular blob: an ellipse whose border is pushed around by smooth noise."""
    size = target.shape[0]
    cx, cy = _point_in(rng, target, 0.15)
    rx, ry = (rng.uniform(*radius) * size for _ in range(2))
    x_idx, y_idx = np.meshgrid(np.arange(size), np.arange(size), indexing="xy")
    dist = np.sqrt(((x_idx - cx) / rx) ** 2 + ((y_idx - cy) / ry) ** 2)
    wobble = _value_noise(rng, size, (6, 6)) - 0.5
    return _and(dist + 0.6 * wobble < 1.0, target)


def _and(a: BoolMask, b: BoolMask) -> BoolMask:
    return np.logical_and(a, b)


def _stroke_width(size: int, rng: np.random.Generator) -> int:
    """1-2 px at 128 px, scaled with the image size."""
    return max(1, round(size * rng.uniform(1.0, 2.5) / 128))


def _scratch(rng: np.random.Generator, scene: Scene) -> tuple[FloatImage, BoolMask]:
    size = scene.target.shape[0]
    points = _path(rng, _point_in(rng, scene.target, 0.2), 4, size * rng.uniform(0.06, 0.1), 0.35)
    width = _stroke_width(size, rng)
    mask = _and(_draw_mask(size, lambda d: d.line(points, fill=255, width=width)), scene.target)
    # a light scratch on dark material, a dark one on light material (pills)
    light = scene.image[mask].mean() < SCRATCH_DARK_ABOVE if mask.any() else True
    color = np.asarray((242, 240, 232) if light else (70, 64, 58), np.float32)
    return _blend(scene.image, mask, color, 0.8), mask


def _crack(rng: np.random.Generator, scene: Scene) -> tuple[FloatImage, BoolMask]:
    size = scene.target.shape[0]
    start = _point_in(rng, scene.target, 0.2)
    trunk = _path(rng, start, 12, size * rng.uniform(0.02, 0.035), 1.0)
    branch = _path(rng, trunk[len(trunk) // 2], 6, size * 0.025, 1.1)
    width = _stroke_width(size, rng)

    def draw(d: ImageDraw.ImageDraw) -> None:
        d.line(trunk, fill=255, width=width + 1, joint="curve")
        d.line(branch, fill=255, width=width)

    mask = _and(_draw_mask(size, draw), scene.target)
    return _blend(scene.image, mask, np.asarray((14, 10, 8), np.float32), 0.88), mask


def _hole(rng: np.random.Generator, scene: Scene) -> tuple[FloatImage, BoolMask]:
    size = scene.target.shape[0]
    cx, cy = _point_in(rng, scene.target, 0.15)
    r = size * rng.uniform(0.035, 0.07)
    box = (cx - r, cy - r * rng.uniform(0.7, 1.0), cx + r, cy + r * rng.uniform(0.7, 1.0))
    mask = _and(_draw_mask(size, lambda d: d.ellipse(box, fill=255)), scene.target)
    depth = _colorize(_value_noise(rng, size, (8, 8)), (4, 4, 6), (34, 30, 28))
    image = np.where(mask[..., None], depth, scene.image)
    return image.astype(np.float32), mask


def _stain(rng: np.random.Generator, scene: Scene) -> tuple[FloatImage, BoolMask]:
    mask = _blob(rng, scene.target, (0.06, 0.13))
    color = np.asarray(_jitter(rng, (92, 58, 16), 12), np.float32)
    return _blend(scene.image, mask, color, rng.uniform(0.55, 0.7)), mask


def _missing(rng: np.random.Generator, scene: Scene) -> tuple[FloatImage, BoolMask]:
    size = scene.target.shape[0]
    cx, cy = _point_in(rng, scene.target, 0.15)
    r = size * rng.uniform(0.06, 0.11)
    corners = 7
    angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
    polygon = [
        (cx + r * rng.uniform(0.6, 1.2) * math.cos(a), cy + r * rng.uniform(0.6, 1.2) * math.sin(a))
        for a in angles
    ]
    mask = _and(_draw_mask(size, lambda d: d.polygon(polygon, fill=255)), scene.target)
    image = np.where(mask[..., None], scene.substrate(), scene.image)
    return image.astype(np.float32), mask


def _color(rng: np.random.Generator, scene: Scene) -> tuple[FloatImage, BoolMask]:
    mask = _blob(rng, scene.target, (0.08, 0.16))
    palette = ((206, 40, 150), (240, 150, 10), (40, 190, 220))  # absent from every domain
    color = np.asarray(palette[int(rng.integers(0, len(palette)))], np.float32)
    return _blend(scene.image, mask, color, 0.6), mask


def _blend(image: FloatImage, mask: BoolMask, color: np.ndarray, alpha: float) -> FloatImage:
    mixed = (1 - alpha) * image + alpha * color
    return np.where(mask[..., None], mixed, image).astype(np.float32)


DEFECT_RENDERERS: dict[str, Callable[[np.random.Generator, Scene], tuple[FloatImage, BoolMask]]] = {
    "scratch": _scratch,
    "crack": _crack,
    "hole": _hole,
    "stain": _stain,
    "missing": _missing,
    "color": _color,
}


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class SyntheticImage:
    """One rendered image: RGB ``(S, S, 3)`` uint8 and defect mask ``(S, S)`` bool."""

    domain: str
    defect: str | None
    rgb: np.ndarray
    mask: np.ndarray


def image_rng(seed: int, *parts: str | int) -> np.random.Generator:
    """Random stream of one image, fixed by ``seed`` and its identity ``parts``."""
    key = [zlib.crc32(str(p).encode()) for p in parts]
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def render_image(
    domain: str, defect: str | None, image_size: int, rng: np.random.Generator
) -> SyntheticImage:
    """Render one image of ``domain`` with ``defect`` (None: defect-free)."""
    _check_names([domain], [defect] if defect else [])
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image size {image_size} is too small (minimum {MIN_IMAGE_SIZE})")
    scene = DOMAIN_RENDERERS[domain](rng, image_size)
    image, mask = scene.image, np.zeros((image_size, image_size), bool)
    if defect is not None:
        for _ in range(MAX_DEFECT_TRIES):
            image, mask = DEFECT_RENDERERS[defect](rng, scene)
            if mask.sum() >= MIN_DEFECT_PIXELS:
                break
    rgb = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if defect is not None:
        # pixels a blend left unchanged after rounding are not part of the defect
        mask = mask & (rgb != np.clip(np.rint(scene.image), 0, 255).astype(np.uint8)).any(-1)
    return SyntheticImage(domain, defect, rgb, mask)


def _check_names(domains: Sequence[str], defects: Sequence[str]) -> None:
    for domain in domains:
        if domain not in DOMAIN_RENDERERS:
            raise ConfigError(
                f"unknown synthetic domain {domain!r}; choose from {', '.join(DOMAINS)}"
            )
    for defect in defects:
        if defect not in DEFECT_RENDERERS:
            raise ConfigError(f"unknown defect kind {defect!r}; choose from {', '.join(DEFECTS)}")


def encode_png(array: np.ndarray) -> bytes:
    """uint8 ``(H, W, 3)`` RGB or ``(H, W)`` grey array -> PNG bytes (deterministic)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def encode_mask_png(mask: np.ndarray) -> bytes:
    """Boolean mask -> 8-bit PNG, 255 on defects (MVTec convention)."""
    return encode_png(mask.astype(np.uint8) * 255)


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class SyntheticRecord:
    """One generated labelled image before it is placed in a layout."""

    domain: str
    split: str
    defect: str | None  # None: normal ("good")
    index: int  # number within (domain, split, defect)
    image: SyntheticImage


@dataclass(frozen=True)
class SyntheticDataset:
    """What :func:`generate_dataset` wrote."""

    uri: str
    layout: DatasetLayout
    domains: tuple[str, ...]
    image_size: int
    files: int
    counts: dict[str, dict[str, int]]  # domain -> {"train_good", "test_good", "test_bad"}


def iter_records(
    domains: Sequence[str],
    n_train_good: int,
    n_test_good: int,
    n_test_bad: int,
    image_size: int,
    seed: int,
    defects: Sequence[str] = DEFECTS,
) -> Iterator[SyntheticRecord]:
    """Render the images of a dataset; defective ones cycle through ``defects``."""
    _check_names(domains, defects)
    for domain in domains:
        groups: list[tuple[str, str | None, int]] = [("train", None, n_train_good)]
        groups.append(("test", None, n_test_good))
        per_defect = [
            n_test_bad // len(defects) + (i < n_test_bad % len(defects))
            for i in range(len(defects))
        ]
        groups += [("test", d, n) for d, n in zip(defects, per_defect, strict=True)]
        for split, defect, count in groups:
            for index in range(count):
                rng = image_rng(seed, domain, split, defect or "good", index)
                image = render_image(domain, defect, image_size, rng)
                yield SyntheticRecord(domain, split, defect, index, image)


def generate_dataset(
    uri: str,
    *,
    domains: Sequence[str] = DOMAINS,
    n_train_good: int = 8,
    n_test_good: int = 4,
    n_test_bad: int = 12,
    image_size: int = 128,
    seed: int = 0,
    layout: DatasetLayout = "mvtec",
    defects: Sequence[str] = DEFECTS,
    storage: StorageConfig | None = None,
) -> SyntheticDataset:
    """Write a labelled synthetic dataset (one class per domain) to a local path or S3.

    ``layout``: ``mvtec`` (MVTec AD tree), ``meta`` (the same tree plus an
    AnomalyCLIP ``meta.json``), ``visa`` (VisA tree + ``split_csv/1cls.csv``) or
    ``folder`` (``<domain>/{train,test}/{normal,anomalous/<defect>,masks/<defect>}``).
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if min(n_train_good, n_test_good, n_test_bad) < 0:
        raise ConfigError("image counts must not be negative")
    records = iter_records(
        domains, n_train_good, n_test_good, n_test_bad, image_size, seed, defects
    )
    writer = _LayoutWriter(uri, layout)
    files = _write_all(writer.files(records), storage)
    counts = {
        d: {"train_good": n_train_good, "test_good": n_test_good, "test_bad": n_test_bad}
        for d in domains
    }
    return SyntheticDataset(uri, layout, tuple(domains), image_size, files, counts)


class _LayoutWriter:
    """Turns records into ``(uri, bytes)`` files of one layout, index files last."""

    def __init__(self, uri: str, layout: DatasetLayout) -> None:
        self.uri = uri
        self.layout = layout
        self.meta: dict[str, dict[str, list[dict[str, object]]]] = {"train": {}, "test": {}}
        self.visa_rows: list[dict[str, str]] = []

    def files(self, records: Iterator[SyntheticRecord]) -> Iterator[tuple[str, bytes]]:
        for record in records:
            yield from self._record_files(record)
        if self.layout == "meta":
            yield join(self.uri, "meta.json"), json.dumps(self.meta, indent=1).encode()
        if self.layout == "visa":
            yield join(self.uri, "split_csv", "1cls.csv"), _csv_bytes(self.visa_rows)

    def _record_files(self, record: SyntheticRecord) -> Iterator[tuple[str, bytes]]:
        image_rel, mask_rel = self._paths(record)
        yield join(self.uri, image_rel), encode_png(record.image.rgb)
        if mask_rel is not None:
            yield join(self.uri, mask_rel), encode_mask_png(record.image.mask)
        anomalous = record.defect is not None
        self.meta[record.split].setdefault(record.domain, []).append(
            {
                "img_path": image_rel,
                "mask_path": mask_rel or "",
                "cls_name": record.domain,
                "specie_name": record.defect or "good",
                "anomaly": int(anomalous),
            }
        )
        self.visa_rows.append(
            {
                "object": record.domain,
                "split": record.split,
                "label": "anomaly" if anomalous else "normal",
                "image": image_rel,
                "mask": mask_rel or "",
            }
        )

    def _paths(self, record: SyntheticRecord) -> tuple[str, str | None]:
        name = f"{record.index:03d}"
        d, split, defect = record.domain, record.split, record.defect
        if self.layout in ("mvtec", "meta"):
            image = f"{d}/{split}/{defect or 'good'}/{name}.png"
            mask = f"{d}/ground_truth/{defect}/{name}_mask.png" if defect else None
        elif self.layout == "visa":
            folder = "Anomaly" if defect else "Normal"
            stem = f"{defect}_{name}" if defect else f"{split}_{name}"
            image = f"{d}/Data/Images/{folder}/{stem}.png"
            mask = f"{d}/Data/Masks/Anomaly/{stem}.png" if defect else None
        else:
            image = (
                f"{d}/{split}/anomalous/{defect}/{name}.png"
                if defect
                else f"{d}/{split}/normal/{name}.png"
            )
            mask = f"{d}/{split}/masks/{defect}/{name}.png" if defect else None
        return image, mask


def _csv_bytes(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["object", "split", "label", "image", "mask"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _chain(
    first: tuple[str, bytes], rest: Iterator[tuple[str, bytes]]
) -> Iterator[tuple[str, bytes]]:
    yield first
    yield from rest


def _write_all(files: Iterator[tuple[str, bytes]], storage: StorageConfig | None) -> int:
    """Write every file; uploads to object stores run in parallel with a bounded number
    of files in flight, so memory stays flat however many images are generated."""
    first = next(files, None)
    if first is None:
        return 0
    if not is_remote(first[0]):
        written = 0
        for uri, data in _chain(first, files):
            write_bytes(uri, data, storage)
            written += 1
        return written
    written = 0
    pending: set[Future[None]] = set()
    with ThreadPoolExecutor(REMOTE_WRITERS) as pool:
        for uri, data in _chain(first, files):
            if len(pending) >= REMOTE_IN_FLIGHT:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                written += _results(done)
            pending.add(pool.submit(write_bytes, uri, data, storage))
        return written + _results(wait(pending).done)


def _results(done: set[Future[None]]) -> int:
    for future in done:
        future.result()  # re-raise the first upload error
    return len(done)


# --------------------------------------------------------------------------- archive


@dataclass(frozen=True)
class ArchiveEntry:
    """Ground truth of one archive image (the archive itself carries no labels)."""

    uri: str
    domain: str
    defect: str | None
    width: int
    height: int


def generate_archive(
    uri: str,
    *,
    count: int = 100,
    domains: Sequence[str] = DOMAINS,
    image_size: int = 256,
    defect_rate: float = 0.1,
    seed: int = 0,
    storage: StorageConfig | None = None,
) -> list[ArchiveEntry]:
    """Write a flat, unlabelled "night archive" of ``count`` images under ``uri``.

    Images mix domains, PNG and JPEG, and a few aspect ratios; about
    ``defect_rate`` of them carry a defect. Returns the ground truth per image.
    """
    _check_names(domains, [])
    if count < 0 or not 0.0 <= defect_rate <= 1.0:
        raise ConfigError("count must be >= 0 and defect_rate within [0, 1]")
    entries: list[ArchiveEntry] = []

    def files() -> Iterator[tuple[str, bytes]]:
        for index in range(count):
            entry, data = _archive_image(uri, index, domains, image_size, defect_rate, seed)
            entries.append(entry)
            yield entry.uri, data

    _write_all(files(), storage)
    return entries


def _archive_image(
    uri: str, index: int, domains: Sequence[str], size: int, defect_rate: float, seed: int
) -> tuple[ArchiveEntry, bytes]:
    rng = image_rng(seed, "archive", index)
    domain = domains[int(rng.integers(0, len(domains)))]
    defect = DEFECTS[int(rng.integers(0, len(DEFECTS)))] if rng.random() < defect_rate else None
    rendered = render_image(domain, defect, size, rng)
    aspect = ARCHIVE_ASPECTS[int(rng.integers(0, len(ARCHIVE_ASPECTS)))]
    width, height = (size, int(size * aspect)) if aspect <= 1 else (int(size / aspect), size)
    rgb = rendered.rgb[:height, :width]
    jpeg = rng.random() < ARCHIVE_JPEG_SHARE
    buffer = io.BytesIO()
    if jpeg:
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(rgb).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    name = f"img-{index:06d}.{'jpg' if jpeg else 'png'}"
    entry = ArchiveEntry(join(uri, name), domain, defect, width, height)
    return entry, buffer.getvalue()
