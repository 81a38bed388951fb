"""A procedural street for scenes to happen in, and the camera's sensor (gain, tint, noise).

Why procedural and not a photo: a photo of a street has faces and face-like things in it that the truth would not
list; a drawn street has none, so every detection on it is either a pasted face or a false positive worth counting.
Texture and noise matter for the same reason: a flat background is easier for a detector than a city.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from argus.errors import ConfigError

# layout, as fractions of the frame height (the street runs left to right)
BUILDING_BASE = 0.42
FAR_KERB = 0.55
NEAR_KERB = 0.80
NOISE_TILES = 3
NOISE_PAD = 32


def _rng(seed: int, *purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, *purpose])


def _texture(rng: np.random.Generator, h: int, w: int, sigma: float, blur: float) -> np.ndarray:
    """Smooth grain (float32, zero mean): blurred white noise, the cheapest "concrete".."""
    n: np.ndarray = rng.normal(0.0, sigma, (h, w)).astype(np.float32)
    if blur > 0:
        b: np.ndarray = cv2.GaussianBlur(n, (0, 0), blur)
        n = (b * (sigma / max(float(b.std()), 1e-3))).astype(np.float32)
    return n


def street_background(seed: int, width: int, height: int) -> np.ndarray:
    """Buildings with windows and doors, a far pavement, a road with lane marks and a crossing, a near pavement."""
    rng = _rng(seed, 1)
    h, w = height, width
    img = np.zeros((h, w, 3), np.float32)
    yb, yk, yn = int(BUILDING_BASE * h), int(FAR_KERB * h), int(NEAR_KERB * h)
    sc = h / 720.0
    # buildings: blocks of random width and colour, each with its own window grid
    palette = np.array([[70, 80, 150], [120, 150, 190], [140, 140, 140], [90, 110, 130], [160, 175, 200],
                        [60, 70, 95], [110, 120, 110]], np.float32)
    x = 0
    while x < w:
        bw = int(rng.integers(int(140 * sc), int(340 * sc)))
        col = palette[rng.integers(len(palette))] + rng.normal(0, 10, 3)
        top = int(rng.integers(0, int(0.12 * h))) if rng.random() < 0.5 else 0
        img[:top, x:x + bw] = (215, 190, 160)  # sky above a lower block
        img[top:yb, x:x + bw] = col
        ww, wh = int(rng.integers(int(22 * sc), int(40 * sc))), int(rng.integers(int(28 * sc), int(50 * sc)))
        gx, gy = int(ww * rng.uniform(0.6, 1.2)), int(wh * rng.uniform(0.5, 0.9))
        glass = np.array([60, 50, 40], np.float32) + rng.normal(0, 8, 3)
        yy = top + gy
        while yy + wh < yb - int(60 * sc):
            xx = x + gx // 2 + 4
            while xx + ww < x + bw - 4:
                lit = rng.random() < 0.15
                c = (np.array([120, 200, 235], np.float32) if lit else glass) + rng.normal(0, 6, 3)
                cv2.rectangle(img, (xx - 2, yy - 2), (xx + ww + 2, yy + wh + 2), (col * 0.7).tolist(), -1)
                cv2.rectangle(img, (xx, yy), (xx + ww, yy + wh), c.tolist(), -1)
                cv2.line(img, (xx + ww // 2, yy), (xx + ww // 2, yy + wh), (col * 0.6).tolist(), 1)
                xx += ww + gx
            yy += wh + gy
        if rng.random() < 0.6:  # a door or a shop front at street level
            dx = x + int(rng.integers(4, max(5, bw - int(60 * sc))))
            cv2.rectangle(img, (dx, yb - int(70 * sc)), (dx + int(44 * sc), yb), (40, 45, 55), -1)
        cv2.line(img, (x, top), (x, yb), (col * 0.55).tolist(), 2)
        x += bw
    img[:yb] += _texture(rng, yb, w, 7.0, 0.8)[..., None]
    # pavements: paving slabs; road: asphalt
    for y0, y1, base in ((yb, yk, 150.0), (yn, h, 160.0)):
        img[y0:y1] = np.array([base, base + 4, base + 6], np.float32) + rng.normal(0, 4, 3)
        step = int(48 * sc)
        for yy in range(y0, y1, max(4, step // 2)):
            cv2.line(img, (0, yy), (w, yy), (base - 35,) * 3, 1)
        off = int(rng.integers(step))
        for xx in range(-off, w, step):
            cv2.line(img, (xx, y0), (xx, y1), (base - 35,) * 3, 1)
        img[y0:y1] += _texture(rng, y1 - y0, w, 9.0, 1.2)[..., None]
    img[yk:yn] = (62, 64, 66)
    img[yk:yn] += _texture(rng, yn - yk, w, 8.0, 0.7)[..., None]
    for yy, col in ((yk, (185, 185, 180)), (yn, (185, 185, 180))):  # kerbs
        cv2.rectangle(img, (0, yy - int(5 * sc)), (w, yy + int(3 * sc)), col, -1)
    mid = (yk + yn) // 2
    dash, gap = int(60 * sc), int(50 * sc)
    off = int(rng.integers(dash + gap))
    for xx in range(-off, w, dash + gap):
        cv2.rectangle(img, (xx, mid - int(3 * sc)), (xx + dash, mid + int(3 * sc)), (220, 225, 230), -1)
    if rng.random() < 0.7:  # a zebra crossing
        cx = int(rng.uniform(0.15, 0.85) * w)
        stripe = int(24 * sc)
        for yy in range(yk + stripe // 2, yn - stripe // 2, 2 * stripe):
            cv2.rectangle(img, (cx, yy), (cx + int(150 * sc), yy + stripe), (215, 220, 225), -1)
    # soft vignette and an overall light gradient, like a real lens
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    img *= (1.0 - 0.18 * r2)[..., None]
    out: np.ndarray = np.clip(img, 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True, kw_only=True)
class Lighting:
    """The camera: ``gain`` scales the light (0.2 = a dark street), ``tint`` is a BGR white balance, ``noise`` the
    sensor's standard deviation in grey levels after gain (dark scenes are noisy because gain amplifies it)."""

    gain: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 2.5

    def __post_init__(self) -> None:
        if not 0 < self.gain <= 4:
            raise ConfigError(f"lighting gain: expected 0 < gain <= 4, got {self.gain}")
        if not 0 <= self.noise <= 64:
            raise ConfigError(f"lighting noise: expected 0 <= noise <= 64, got {self.noise}")


class Sensor:
    """Applies Lighting per frame. Noise comes from a few precomputed tiles at a per-frame random offset: fresh-
    looking grain every frame for two saturating adds instead of millions of normal draws (a 720p frame of Gaussian
    noise costs ~40 ms, more than the rest of the frame)."""

    def __init__(self, lighting: Lighting, seed: int, width: int, height: int) -> None:
        self.lighting = lighting
        g = lighting.gain
        self._lut = [np.clip(np.arange(256) * g * t, 0, 255).astype(np.uint8) for t in lighting.tint]
        self._identity = g == 1.0 and all(t == 1.0 for t in lighting.tint)
        self._tiles: list[tuple[np.ndarray, np.ndarray]] = []
        if lighting.noise > 0:
            rng = _rng(seed, 2)
            for _ in range(NOISE_TILES):
                n = rng.normal(0.0, lighting.noise, (height + NOISE_PAD, width + NOISE_PAD, 3))
                n = np.round(n)
                self._tiles.append((np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)))
        self._w, self._h = width, height

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self._identity:
            img = cv2.merge([cv2.LUT(c, lut) for c, lut in zip(cv2.split(img), self._lut, strict=True)])
        if self._tiles:
            k = int(rng.integers(len(self._tiles)))
            dy, dx = (int(v) for v in rng.integers(0, NOISE_PAD, 2))
            pos, neg = self._tiles[k]
            sl = (slice(dy, dy + self._h), slice(dx, dx + self._w))
            img = cv2.subtract(cv2.add(img, pos[sl]), neg[sl])
        return img
