"""Synthetic chest X-rays whose findings follow the study's image latent ``z`` (4 components).

The picture is built so that a small CNN can learn it at 64 x 64 px from scratch:

- a bright body with two dark lung fields, a bright spine/mediastinum and faint ribs;
- ``z[0]``: heart width (cardiomegaly), the heart being a bright ellipse over the left lung;
- ``z[1]``: a diffuse haze over the lungs and the number and size of blurred bright opacities
  (lung opacity, consolidation, pneumonia);
- ``z[2]``: a fluid level filling the lung bases (pleural effusion), from ``z[2] > -1`` on;
- ``z[3]``: lines and tubes (endotracheal tube, central line, gastric tube: support devices).

AP and PA views share the frontal layout (AP magnifies the heart); LATERAL/LL views show one lung
field with the heart in front and the spine behind. Every image also gets a random pose, exposure,
smooth noise and film grain, so nothing is readable from a single pixel.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: Rendering happens at most at this size (longest side); larger images are upsampled.
_WORK_MAX = 192
#: Support-device thresholds on z[3]: tube, central line, gastric tube.
DEVICE_THRESHOLDS: tuple[float, float, float] = (0.35, 0.9, 1.4)


def effusion_fraction(z2: float | np.ndarray) -> float | np.ndarray:
    """Height of the fluid level as a fraction of the lung height (none for z2 <= -1)."""
    return np.clip(0.08 * (np.asarray(z2) + 1.0), 0.0, 0.45)


def lung_haze(z1: float) -> float:
    """Diffuse airspace opacity: grey levels added to the lung fields (0 below z1 = -1)."""
    return 9.0 * float(np.clip(z1 + 1.0, 0.0, 4.0))


@dataclass
class _Canvas:
    """The working images of one X-ray: ``base`` (anatomy) and ``add`` (blurred overlays)."""

    w: int
    h: int
    rng: np.random.Generator
    base: Image.Image
    add: Image.Image

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...]:
        """Pixel box of a box in relative coordinates."""
        return (x0 * self.w, y0 * self.h, x1 * self.w, y1 * self.h)

    def level(self, low: int, high: int) -> int:
        """A random grey level in [low, high)."""
        return int(self.rng.integers(low, high))


def render_xray(z: np.ndarray, view: str, rows: int, cols: int, seed: int) -> np.ndarray:
    """A grayscale X-ray (rows, cols) uint8 drawn from latent ``z`` for ``view``."""
    rng = np.random.default_rng(seed)
    scale = min(1.0, _WORK_MAX / max(rows, cols))
    h, w = max(32, round(rows * scale)), max(32, round(cols * scale))
    canvas = _Canvas(
        w, h, rng, Image.new("L", (w, h), int(rng.integers(8, 25))), Image.new("L", (w, h), 0)
    )
    lateral = view in {"LATERAL", "LL"}
    if lateral:
        lungs = _draw_lateral(canvas, z)
    else:
        lungs = _draw_frontal(canvas, z, magnify=1.1 if view == "AP" else 1.0)
    _draw_opacities(canvas, lungs, float(z[1]), fewer=lateral)
    add = canvas.add.filter(ImageFilter.BoxBlur(radius=max(1.0, 0.02 * w)))
    canvas.base = canvas.base.filter(ImageFilter.BoxBlur(radius=max(0.5, 0.004 * w)))
    _draw_devices(canvas, float(z[3]), lateral)

    pixels = np.asarray(canvas.base, np.float32) + np.asarray(add, np.float32)
    smooth = rng.standard_normal((h // 24 + 2, w // 24 + 2)).astype(np.float32)
    pixels += 9.0 * np.asarray(Image.fromarray(smooth).resize((w, h), Image.Resampling.BICUBIC))
    pixels = pixels * rng.uniform(0.92, 1.08) + rng.uniform(-8, 8)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = image.rotate(
        float(rng.uniform(-2, 2)),
        resample=Image.Resampling.BILINEAR,
        translate=(float(rng.uniform(-0.02, 0.02) * w), float(rng.uniform(-0.02, 0.02) * h)),
        fillcolor=int(np.clip(pixels[0, 0], 0, 255)),
    )
    if (h, w) != (rows, cols):
        image = image.resize((cols, rows), Image.Resampling.BILINEAR)
    grain = rng.integers(-7, 8, size=(rows, cols), dtype=np.int16)
    return np.clip(np.asarray(image, np.int16) + grain, 0, 255).astype(np.uint8)


def _draw_frontal(canvas: _Canvas, z: np.ndarray, magnify: float) -> list[tuple[float, ...]]:
    """Body, two lungs (haze from z[1]), effusion (z[2]), spine, heart (z[0]), ribs."""
    c, j = canvas, canvas.rng.uniform(-0.02, 0.02, 8)
    draw, draw_add = ImageDraw.Draw(c.base), ImageDraw.Draw(c.add)
    draw.ellipse(c.box(0.04 + j[0], 0.02, 0.96 + j[1], 1.12), fill=c.level(140, 165))
    lungs = [
        c.box(0.12 + j[2], 0.12 + j[3], 0.46, 0.80 + j[4]),
        c.box(0.54, 0.12 + j[5], 0.88 + j[6], 0.80 + j[7]),
    ]
    dark = c.level(46, 58) + round(lung_haze(float(z[1])))
    for lung in lungs:
        draw.ellipse(lung, fill=dark)
    _draw_effusion(c, lungs, float(z[2]))
    draw.rectangle(c.box(0.455, 0.0, 0.545, 1.0), fill=c.level(165, 185))
    half_w = float(np.clip(0.13 * (1 + 0.2 * z[0]) * magnify, 0.07, 0.28))
    cx, cy = 0.54 + c.rng.uniform(-0.015, 0.015), 0.64 + c.rng.uniform(-0.02, 0.02)
    draw.ellipse(c.box(cx - half_w, cy - 0.12, cx + half_w, cy + 0.13), fill=c.level(175, 195))
    rib_w = max(1, round(0.012 * c.w))
    for k in range(7):
        y = 0.14 + 0.085 * k + c.rng.uniform(-0.01, 0.01)
        draw_add.arc(c.box(0.10, y, 0.50, y + 0.16), 200, 340, fill=24, width=rib_w)
        draw_add.arc(c.box(0.50, y, 0.90, y + 0.16), 200, 340, fill=24, width=rib_w)
    return lungs


def _draw_lateral(canvas: _Canvas, z: np.ndarray) -> list[tuple[float, ...]]:
    """Body, one lung field, effusion at the base, spine behind, heart in front."""
    c, j = canvas, canvas.rng.uniform(-0.02, 0.02, 8)
    draw = ImageDraw.Draw(c.base)
    draw.ellipse(c.box(0.08 + j[0], 0.0, 0.92 + j[1], 1.1), fill=c.level(140, 165))
    lung = c.box(0.2 + j[2], 0.12 + j[3], 0.8 + j[4], 0.82 + j[5])
    draw.ellipse(lung, fill=c.level(50, 62) + round(lung_haze(float(z[1]))))
    _draw_effusion(c, [lung], float(z[2]))
    draw.rectangle(c.box(0.74, 0.0, 0.84, 1.0), fill=c.level(170, 190))
    size = float(np.clip(0.14 * (1 + 0.15 * z[0]), 0.08, 0.26))
    draw.ellipse(c.box(0.24, 0.62 - size, 0.24 + 2 * size, 0.62 + size), fill=185)
    return [lung]


def _draw_effusion(canvas: _Canvas, lungs: list[tuple[float, ...]], z2: float) -> None:
    """Fill the lung bases up to a fluid level (both sides when z2 > 1)."""
    rng = canvas.rng
    frac = float(effusion_fraction(z2 + rng.normal(0, 0.15)))
    if frac <= 0.01:
        return
    sides = lungs if z2 > 1.0 or len(lungs) == 1 else [lungs[int(rng.integers(0, len(lungs)))]]
    for x0, y0, x1, y1 in sides:
        mask = Image.new("L", (canvas.w, canvas.h), 0)
        md = ImageDraw.Draw(mask)
        md.ellipse((x0, y0, x1, y1), fill=255)
        md.rectangle((0, 0, canvas.w, y1 - frac * (y1 - y0)), fill=0)
        canvas.base.paste(canvas.level(130, 150), mask=mask)


def _draw_opacities(
    canvas: _Canvas, lungs: list[tuple[float, ...]], z1: float, fewer: bool
) -> None:
    """Bright blobs in the lungs (blurred later); more and larger with z1."""
    rng = canvas.rng
    draw = ImageDraw.Draw(canvas.add)
    n = min(10, int(rng.poisson(np.exp(0.2 + 0.8 * z1) * (0.6 if fewer else 1.0))))
    for _ in range(n):
        x0, y0, x1, y1 = lungs[int(rng.integers(0, len(lungs)))]
        cx = x0 + (x1 - x0) * rng.uniform(0.25, 0.75)
        cy = y0 + (y1 - y0) * rng.uniform(0.2, 0.85)
        r = canvas.w * (0.035 + 0.025 * rng.random()) * (1 + 0.15 * max(z1, -2))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=canvas.level(60, 90))


def _draw_devices(canvas: _Canvas, z3: float, lateral: bool) -> None:
    """Endotracheal tube, central line, gastric tube, by thresholds on z3."""
    c = canvas
    draw = ImageDraw.Draw(c.base)
    width = max(1, round(0.008 * c.w))
    bright = c.level(225, 250)
    x = 0.3 if lateral else 0.5 + c.rng.uniform(-0.01, 0.01)
    if z3 > DEVICE_THRESHOLDS[0]:
        draw.line(c.box(x, 0.0, x + c.rng.uniform(-0.02, 0.02), 0.3), fill=bright, width=width)
    if z3 > DEVICE_THRESHOLDS[1] and not lateral:
        points = [(0.2 * c.w, 0.12 * c.h), (0.36 * c.w, 0.2 * c.h), (0.47 * c.w, 0.36 * c.h)]
        draw.line(points, fill=bright, width=width)
    if z3 > DEVICE_THRESHOLDS[2]:
        draw.line(c.box(x - 0.02, 0.0, x + 0.03, 0.95), fill=bright, width=width)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """Baseline grayscale JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


#: One image job: relative path, rows, cols, view, latent z (4 floats), seed, file status.
ImageJob = tuple[str, int, int, str, tuple[float, ...], int, str]


def write_images(root: str, jobs: list[ImageJob], quality: int) -> int:
    """Render and write ``jobs`` under ``root``; returns the number of files written.

    Status ``missing`` writes nothing, ``truncated`` writes the first part of the JPEG and
    ``empty`` a zero-byte file (the defects of a real download).
    """
    written = 0
    folders: set[Path] = set()
    for relpath, rows, cols, view, z, seed, status in jobs:
        if status == "missing":
            continue
        path = Path(root) / relpath
        if path.parent not in folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            folders.add(path.parent)
        data = b""
        if status != "empty":
            data = encode_jpeg(render_xray(np.asarray(z), view, rows, cols, seed), quality)
        if status == "truncated":
            data = data[: max(200, len(data) * 2 // 5)]
        path.write_bytes(data)
        written += 1
    return written
