"""Read PyTorch ``.pt`` state dicts into numpy arrays WITHOUT importing torch.

Why: torch from PyPI is multi-GB (it pulls CUDA libraries) and a ``torch.load`` of an untrusted pickle can run
arbitrary code. A state dict is only an ordered dict of tensors, so a restricted unpickler that knows the handful
of globals a state dict uses, plus numpy for the raw storages, is enough and is safe: any other global in the
pickle is refused.

Both on-disk layouts are handled:
- legacy (torch < 1.6, e.g. facenet-pytorch's MTCNN weights): magic number, protocol, sys-info and the object
  pickle back to back, then a pickled list of storage keys, then for each key an int64 element count and the raw
  little-endian bytes;
- zip (torch >= 1.6): ``<root>/data.pkl`` plus one ``<root>/data/<key>`` file per storage.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# storage class name -> numpy dtype (little-endian, as torch writes it)
_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class TorchPickleError(ValueError):
    """The file is not a plain tensor state dict (or is corrupt)."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype[Any]
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    del requires_grad, backward_hooks, metadata
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _TensorRef, requires_grad: bool = False, backward_hooks: Any = None) -> _TensorRef:
    del requires_grad, backward_hooks
    return data


class _StateDictUnpickler(pickle.Unpickler):
    """Allows exactly the globals a tensor state dict needs; everything else is an error, never an import."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
        raise TorchPickleError(f"refusing global {module}.{name}: expected only a tensor state dict")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise TorchPickleError(f"unexpected persistent id {pid!r}: expected ('storage', ...)")
        stype, key, _location, numel = pid[1], pid[2], pid[3], pid[4]
        if not isinstance(stype, _StorageType):
            raise TorchPickleError(f"storage of unknown type {stype!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise TorchPickleError(f"storage views are not supported (key {key})")
        return _StorageRef(str(key), stype.dtype, int(numel))


def _materialise(obj: Any, storages: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, _TensorRef):
        base = storages.get(obj.storage.key)
        if base is None:
            raise TorchPickleError(f"tensor refers to missing storage {obj.storage.key}")
        item = base.dtype.itemsize
        need = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride, strict=True)) + 1
        if obj.size and min(obj.size) > 0 and need > base.size:
            raise TorchPickleError(f"tensor {obj.size} overruns storage {obj.storage.key} ({base.size} elements)")
        view = np.lib.stride_tricks.as_strided(
            base[obj.offset :], shape=obj.size, strides=tuple(s * item for s in obj.stride)
        )
        return np.array(view, dtype=base.dtype.newbyteorder("="), copy=True)
    if isinstance(obj, dict):
        return OrderedDict((k, _materialise(v, storages)) for k, v in obj.items())
    return obj


def _load_legacy(data: bytes) -> Any:
    f = io.BytesIO(data)
    magic = pickle.load(f)  # plain ints only: safe with the default unpickler
    if magic != LEGACY_MAGIC:
        raise TorchPickleError("not a legacy torch file: bad magic number")
    _protocol = pickle.load(f)
    sys_info = pickle.load(f)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise TorchPickleError("only little-endian legacy torch files are supported")
    root = _StateDictUnpickler(f).load()
    keys = _StateDictUnpickler(f).load()
    refs: dict[str, _StorageRef] = {}

    def collect(o: Any) -> None:
        if isinstance(o, _TensorRef):
            refs[o.storage.key] = o.storage
        elif isinstance(o, dict):
            for v in o.values():
                collect(v)

    collect(root)
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        ref = refs.get(str(key))
        if ref is None:
            raise TorchPickleError(f"storage {key} listed but never used")
        count = int(np.frombuffer(f.read(8), "<i8")[0])
        nbytes = count * ref.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise TorchPickleError(f"storage {key}: truncated, expected {nbytes} bytes, got {len(raw)}")
        storages[str(key)] = np.frombuffer(raw, ref.dtype)
    return _materialise(root, storages)


def _load_zip(data: bytes) -> Any:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise TorchPickleError(f"expected one data.pkl in the zip, got {pkl}")
        prefix = pkl[0][: -len("data.pkl")]
        unp = _StateDictUnpickler(io.BytesIO(zf.read(pkl[0])))
        root = unp.load()
        storages: dict[str, np.ndarray] = {}

        def collect(o: Any) -> None:
            if isinstance(o, _TensorRef) and o.storage.key not in storages:
                raw = zf.read(f"{prefix}data/{o.storage.key}")
                storages[o.storage.key] = np.frombuffer(raw, o.storage.dtype)
            elif isinstance(o, dict):
                for v in o.values():
                    collect(v)

        collect(root)
    return _materialise(root, storages)


def load_state_dict(data: bytes) -> OrderedDict[str, np.ndarray]:
    """Parse the bytes of a ``.pt`` state dict into ``{name: numpy array}`` in file order."""
    try:
        obj = _load_zip(data) if data[:4] == b"PK\x03\x04" else _load_legacy(data)
    except (pickle.UnpicklingError, EOFError, KeyError, IndexError) as e:
        raise TorchPickleError(f"corrupt torch file: {e}") from e
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise TorchPickleError("expected a dict of tensors (a state dict)")
    return OrderedDict((str(k), v) for k, v in obj.items())
