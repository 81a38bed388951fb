"""Real faces for synthetic scenes: identity → face patches cut from the photos and clips in ``assets/``.

Why real faces and the project's own detector: a scene is only a useful test of the tracker and of the false-alert
rate if its faces look to the detector and the embedder like camera faces do. Each patch is a crop with margin
around a face the detector found, with that detection's box and 5 landmarks in crop coordinates, so a scene knows
exactly where it pasted the face (its ground-truth box is the detector box mapped into the frame) and where the
eyes are (sunglasses).

Sources: the identity-labelled assets (``argus.evaluation.IDENTITY_SOURCES``: the people with several photos,
needed for "enrollment photo ≠ scene photo") always; ``assets/strangers/identities.json`` when it exists (many
distinct people, one entry per face with its box; faces it leaves out are never used); otherwise a few extra
single-person stills and the 5 people of ``pyfeat/multi_face.jpg``, so a crowd still has 15 distinct people.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from argus.errors import InputError
from argus.faces.boxes import iou
from argus.faces.types import Detections
from argus.imaging import read_image
from argus_data import assets as packaged_assets

log = logging.getLogger(__name__)

ASSETS = packaged_assets()
STRANGERS_INDEX = "strangers/identities.json"
Detect = Callable[[np.ndarray], Detections]

# Used only when assets/strangers/identities.json does not exist (its author may include these same people, and
# one person must never appear under two names). Each file shows different people from every other source.
FALLBACK_SINGLES: tuple[tuple[str, str], ...] = (
    ("pyfeat_f1", "pyfeat/0-f1-su-ph.jpg"),
    ("pyfeat_f15", "pyfeat/0-f15-hao-ph.jpg"),
    ("pyfeat_f13", "pyfeat/15-f13-anc-ph.jpg"),
    ("pyfeat_m7", "pyfeat/45-m7-di-ph.jpg"),
    ("pyfeat_beard", "pyfeat/Image_with_alpha.png"),
)
FALLBACK_GROUPS: tuple[tuple[str, str], ...] = (("pyfeat_group", "pyfeat/multi_face.jpg"),)

DETECT_MAX_SIDE = 960  # group photos are detected (and cut) at most this big: faces in scenes are <= ~300 px
SINGLE_MAX_SIDE = 640  # one-person photos fill the frame: smaller is enough and the detector's pyramid is cheaper
PATCH_MAX_FACE = 220  # a patch's face box is at most this wide, so per-frame resizes stay cheap
MIN_SOURCE_FACE = 48  # smaller source faces would be blurry when pasted at 100+ px
MIN_SCORE = 0.95


@dataclass(frozen=True, kw_only=True, eq=False)
class FacePatch:
    """One real face, ready to paste: a BGR crop with margin, the detector's box and landmarks in crop pixels.

    ``source`` names the photo (``faces/obama.jpg``, ``pyfeat/single_face.mp4#36``); ``photo`` is the file it
    came from, so "a different photo" can be decided per file (frames of one clip are the same photo, in effect).
    """

    identity: str
    source: str
    image: np.ndarray = field(repr=False)  # H×W×3 uint8 BGR
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 in crop pixels
    landmarks: np.ndarray  # (5, 2) float32 in crop pixels
    score: float

    @property
    def photo(self) -> str:
        return self.source.split("#", 1)[0]

    @property
    def face_width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def skin_bgr(self) -> tuple[int, int, int]:
        """Median colour between the eyes and the mouth: the neck of a drawn body gets it."""
        lm = self.landmarks
        x1, x2 = sorted((int(lm[0, 0]), int(lm[1, 0])))
        y1, y2 = int(lm[:2, 1].mean()), int(lm[3:, 1].mean())
        reg = self.image[max(0, y1):max(y1 + 1, y2), max(0, x1):max(x1 + 1, x2)].reshape(-1, 3)
        med = np.median(reg, axis=0) if len(reg) else np.array([120, 140, 180])
        return int(med[0]), int(med[1]), int(med[2])


@dataclass(frozen=True, kw_only=True, eq=False)
class FaceBank:
    """Identity → patches (sorted by source), plus the photos that failed, so a report can say what is missing."""

    patches: Mapping[str, tuple[FacePatch, ...]]
    missed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for ident, ps in self.patches.items():
            if not ps:
                raise InputError(f"face bank: expected at least one patch for {ident!r}, got none")

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(sorted(self.patches))

    def __len__(self) -> int:
        return len(self.patches)

    def __contains__(self, identity: object) -> bool:
        return identity in self.patches

    def of(self, identity: str) -> tuple[FacePatch, ...]:
        try:
            return self.patches[identity]
        except KeyError:
            raise InputError(f"face bank: expected one of {len(self.patches)} identities, got {identity!r}") from None

    def photos(self, identity: str) -> tuple[str, ...]:
        """The distinct photos (files) this person's patches come from."""
        return tuple(sorted({p.photo for p in self.of(identity)}))

    def multi_photo(self) -> tuple[str, ...]:
        """Identities with patches from at least two photos: those can be enrolled from a photo the scene never
        shows."""
        return tuple(i for i in self.identities if len(self.photos(i)) >= 2)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the bank's content does: a scene is reproducible from its seed *for one bank*."""
        h = hashlib.sha256()
        for ident in self.identities:
            for p in self.patches[ident]:
                h.update(f"{ident}|{p.source}|{p.image.shape}|".encode())
                h.update(np.round(p.box, 1).tobytes())
        return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- building

def _downscale(img: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> np.ndarray:
    h, w = img.shape[:2]
    k = max_side / max(h, w)
    if k >= 1:
        return img
    return cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)


def cut_patch(identity: str, source: str, img: np.ndarray, box: np.ndarray, landmarks: np.ndarray,
              score: float) -> FacePatch | None:
    """A patch around ``box`` or None when the face is unusable: too small, or touching the photo's edge (a half
    face pasted into a street looks like nothing a camera sees)."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    if bw < MIN_SOURCE_FACE or score < MIN_SCORE:
        return None
    if x1 < 2 or y1 < 2 or x2 > w - 2 or y2 > h - 2:
        return None
    m = max(bw, bh)
    cx1, cy1 = max(0, int(x1 - 0.45 * m)), max(0, int(y1 - 0.5 * m))
    cx2, cy2 = min(w, int(np.ceil(x2 + 0.45 * m))), min(h, int(np.ceil(y2 + 0.4 * m)))
    crop = img[cy1:cy2, cx1:cx2]
    b = np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1], np.float32)
    lm = (np.asarray(landmarks, np.float32) - np.array([cx1, cy1], np.float32)).astype(np.float32)
    k = PATCH_MAX_FACE / bw
    if k < 1:
        nw, nh = max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))
        sx, sy = nw / crop.shape[1], nh / crop.shape[0]
        crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA)
        b = (b * np.array([sx, sy, sx, sy], np.float32)).astype(np.float32)
        lm = (lm * np.array([sx, sy], np.float32)).astype(np.float32)
    return FacePatch(identity=identity, source=source, image=np.ascontiguousarray(crop),
                     box=np.round(b, 2).astype(np.float32), landmarks=np.round(lm, 2).astype(np.float32),
                     score=round(float(score), 4))


def _best(det: Detections) -> int | None:
    return None if len(det) == 0 else int(np.argmax(det.scores))


def _single_person(identity: str, source: str, img: np.ndarray, detect: Detect) -> FacePatch | None:
    img = _downscale(img, SINGLE_MAX_SIDE)
    det = detect(img)
    k = _best(det)
    if k is None:
        return None
    return cut_patch(identity, source, img, det.boxes[k], det.landmarks[k], float(det.scores[k]))


def _labelled_items(assets: Path, frames_per_clip: int) -> Iterable[tuple[str, str, np.ndarray]]:
    from argus.evaluation import IDENTITY_SOURCES, sample_frames

    for identity, rel, kind in IDENTITY_SOURCES:
        path = assets / rel
        if not path.exists():
            continue
        if kind == "image":
            yield identity, rel, read_image(str(path))
        elif frames_per_clip > 0:
            # 0.1..0.9: the first and last frames of these clips are often mid-turn or faceless
            for i, frame in sample_frames(path, frames_per_clip, start=0.1, stop=0.9):
                yield identity, f"{rel}#{i}", frame


def _index_entries(assets: Path) -> list[object]:
    path = assets / STRANGERS_INDEX
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: expected a JSON list of {{identity, file, box}}, cannot read it: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("faces"), list):
        data = data["faces"]  # the documented form: {"about": ..., "faces": [...], "left_out": [...]}
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of faces or {{\"faces\": [...]}}, got {type(data).__name__}")
    return data


def _boxed_faces(entries: Sequence[tuple[str, str, Sequence[float]]], assets: Path,
                 detect: Detect, missed: list[str]) -> list[FacePatch]:
    """Faces named by (identity, file, box): the detector runs once per file, each entry takes the detection
    overlapping its box most (its landmarks are what the scene needs)."""
    by_file: dict[str, list[tuple[str, Sequence[float]]]] = {}
    for ident, rel, box in entries:
        by_file.setdefault(rel, []).append((ident, box))
    out: list[FacePatch] = []
    for rel in sorted(by_file):
        try:
            full = read_image(str(assets / rel))
        except InputError as e:
            log.warning("face bank: skipping %s: %s", rel, e)
            missed.extend(f"{rel}:{i}" for i, _ in by_file[rel])
            continue
        img = _downscale(full)
        k = img.shape[1] / full.shape[1]
        det = detect(img)
        for n, (ident, box) in enumerate(by_file[rel]):
            name = f"{rel}#{n}" if len(by_file[rel]) > 1 else rel
            want = np.asarray(box, np.float64).reshape(1, 4) * k
            if len(det) == 0:
                missed.append(name)
                continue
            ov = iou(want, det.boxes)[0]
            j = int(np.argmax(ov))
            p = (cut_patch(ident, name, img, det.boxes[j], det.landmarks[j], float(det.scores[j]))
                 if ov[j] >= 0.3 else None)
            if p is None:
                missed.append(name)
            else:
                out.append(p)
    return out


def build_face_bank(*, assets: Path = ASSETS, detect: Detect | None = None, frames_per_clip: int = 3) -> FaceBank:
    """Run the detector once over every source and cut the patches (a few seconds on 2 cores)."""
    if detect is None:
        from argus.config import load_settings
        from argus.runtime.resources import Resources

        detect = Resources(load_settings()).pipeline.detect
    patches: list[FacePatch] = []
    missed: list[str] = []
    for identity, source, img in _labelled_items(assets, frames_per_clip):
        p = _single_person(identity, source, img, detect)
        if p is None:
            missed.append(source)
        else:
            patches.append(p)
    boxed: list[tuple[str, str, Sequence[float]]] = []
    if (assets / STRANGERS_INDEX).exists():
        for n, e in enumerate(_index_entries(assets)):
            ident, rel, box = (e.get("identity"), e.get("file"), e.get("box")) if isinstance(e, dict) else (0, 0, 0)
            if not (isinstance(ident, str) and isinstance(rel, str) and isinstance(box, list) and len(box) == 4):
                raise InputError(f"{assets / STRANGERS_INDEX} entry {n}: expected "
                                 f"{{identity: str, file: str, box: [x1, y1, x2, y2]}}, got {e!r}")
            boxed.append((ident, rel, [float(v) for v in box]))
    else:
        for identity, rel in FALLBACK_SINGLES:
            if (assets / rel).exists():
                p = _single_person(identity, rel, read_image(str(assets / rel)), detect)
                patches.append(p) if p is not None else missed.append(rel)
        for prefix, rel in FALLBACK_GROUPS:
            if (assets / rel).exists():
                patches.extend(_group(prefix, rel, assets, detect, missed))
    patches.extend(_boxed_faces(boxed, assets, detect, missed))
    grouped: dict[str, list[FacePatch]] = {}
    for p in patches:
        grouped.setdefault(p.identity, []).append(p)
    bank = FaceBank(patches={k: tuple(sorted(v, key=lambda p: p.source)) for k, v in sorted(grouped.items())},
                    missed=tuple(missed))
    log.info("face bank: %d identities, %d patches, %d sources without a usable face",
             len(bank), sum(len(v) for v in bank.patches.values()), len(missed))
    return bank


def _group(prefix: str, rel: str, assets: Path, detect: Detect, missed: list[str]) -> list[FacePatch]:
    """Every face of a group photo is a different person: number them left to right."""
    img = _downscale(read_image(str(assets / rel)))
    det = detect(img)
    order = np.argsort(det.boxes[:, 0]) if len(det) else np.zeros(0, int)
    out = []
    for n, j in enumerate(order):
        p = cut_patch(f"{prefix}{n}", f"{rel}#{n}", img, det.boxes[j], det.landmarks[j], float(det.scores[j]))
        out.append(p) if p is not None else missed.append(f"{rel}#{n}")
    return out


_BANKS: dict[tuple[str, bool, float], FaceBank] = {}
_BANK_LOCK = threading.Lock()


def default_bank(assets: Path = ASSETS) -> FaceBank:
    """The bank for ``assets``, built once per process (rebuilt when identities.json appears or changes)."""
    index = assets / STRANGERS_INDEX
    key = (str(assets.resolve()), index.exists(), index.stat().st_mtime if index.exists() else 0.0)
    with _BANK_LOCK:
        bank = _BANKS.get(key)
        if bank is None:
            bank = _BANKS[key] = build_face_bank(assets=assets)
        return bank
