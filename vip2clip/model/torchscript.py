"""Read the tensors of a TorchScript archive without running any of its code.

OpenAI's CLIP releases (``ViT-L-14-336px.pt``, the file the official code loads) are
TorchScript archives. ``torch.jit.load`` runs code from the archive while loading it (a
TorchScript ``__setstate__`` can create or overwrite files), so weights from wherever a
user downloaded them are never given to it. This module reads the archive as data:

* the archive is a zip with one root folder holding ``data.pkl`` (the module tree,
  pickled), ``data/<key>`` (raw storage bytes) and ``code/`` (TorchScript source, never
  read here);
* ``data.pkl`` is unpickled by :class:`RestrictedUnpickler`: module objects become
  :class:`ScriptModuleState` attribute holders (their ``__setstate__`` only stores what
  it is given), tensors are rebuilt by local functions from the ``data/`` records, and
  any other global (``os.system``, ``builtins.eval``, ...) is refused;
* :func:`read_torchscript_state_dict` walks the module tree and returns every tensor
  attribute under its dotted name (``visual.conv1.weight``), as ``state_dict()`` would.
"""

from __future__ import annotations

import collections
import io
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from vip2clip.errors import BackboneUnavailableError

DATA_PICKLE = "data.pkl"
CODE_FOLDER = "code"
CONSTANTS_PICKLE = "constants.pkl"
BYTEORDER_RECORD = "byteorder"
MODULE_PREFIX = "__torch__"  # TorchScript's namespace of the archive's own classes
MAX_DATA_PICKLE_BYTES = 64 * 1024**2  # ViT-L/14's data.pkl is ~30 kB
# torch writes records uncompressed; a record that inflates much more is a zip bomb.
MAX_COMPRESSION_RATIO = 20
MAX_MODULE_DEPTH = 64  # ViT-L: 5 levels (model.visual.transformer.resblocks.0.attn)

# Legacy typed storages name the element type of a storage in a TorchScript pickle.
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}
_STORAGE_KEY = re.compile(r"[0-9A-Za-z_]{1,64}")


@dataclass(frozen=True)
class StorageType:
    """What ``torch.FloatStorage`` (etc.) stands for in an archive: an element type."""

    name: str
    dtype: torch.dtype


@dataclass(frozen=True)
class Storage:
    """One ``data/<key>`` record as a flat tensor of its element type."""

    key: str
    flat: torch.Tensor


class ScriptModuleState:
    """A module (or TorchScript object) of the archive: its type name and its state.

    Created by pickle's NEWOBJ without calling anything of the archive; ``__setstate__``
    stores the state as given and runs nothing.
    """

    type_name: ClassVar[str] = MODULE_PREFIX

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class RefusedArchiveError(BackboneUnavailableError):
    """A TorchScript archive holds something other than tensors and module attributes."""


def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a zip laid out as a TorchScript archive (``<root>/code/`` or
    ``<root>/constants.pkl`` next to ``<root>/data.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(
        name.split("/")[1:2] == [CODE_FOLDER] or name.split("/")[1:] == [CONSTANTS_PICKLE]
        for name in names
    )


def read_torchscript_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of the archive's module tree by dotted name, code never run.

    Raises :class:`RefusedArchiveError` (one line, naming ``path``) when ``data.pkl``
    references anything but tensor rebuilding, storage types and the archive's own
    module classes, or when the archive is malformed.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            root = _archive_root(archive, path)
            _check_byteorder(archive, root, path)
            pickled = _read_record(archive, f"{root}/{DATA_PICKLE}", MAX_DATA_PICKLE_BYTES, path)
            tree = RestrictedUnpickler(pickled, archive, root, path).load()
    except RefusedArchiveError:
        raise
    except Exception as exc:  # malformed zips and pickles raise many types
        raise RefusedArchiveError(
            f"{path} is not a readable TorchScript archive ({type(exc).__name__}: "
            f"{_first_line(exc)})"
        ) from None
    if not isinstance(tree, ScriptModuleState):
        raise RefusedArchiveError(f"{path}: its {DATA_PICKLE} does not hold a module")
    tensors: dict[str, torch.Tensor] = {}
    _collect(tree, "", tensors, path, ancestors=())
    return tensors


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript ``data.pkl`` into plain data; refuses every other global."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str, path: Path) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._root = root
        self._path = path
        self._classes: dict[str, type[ScriptModuleState]] = {}
        self._storages: dict[str, Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == MODULE_PREFIX or module.startswith(MODULE_PREFIX + "."):
            return self._module_class(f"{module}.{name}")
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise RefusedArchiveError(
                f"{self._path} is refused: its {DATA_PICKLE} references {module}.{name}, and "
                "only tensors and module attributes are read from TorchScript archives "
                "(nothing in the file is run)"
            )
        return allowed

    def persistent_load(self, pid: Any) -> Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise RefusedArchiveError(f"{self._path}: unknown persistent id in {DATA_PICKLE}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, StorageType) or not isinstance(key, str):
            raise RefusedArchiveError(f"{self._path}: malformed storage reference {key!r}")
        if not _STORAGE_KEY.fullmatch(key) or not _is_count(numel):
            raise RefusedArchiveError(f"{self._path}: malformed storage reference {key!r}")
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, storage_type.dtype, numel)
        return self._storages[key]

    def _read_storage(self, key: str, dtype: torch.dtype, numel: int) -> Storage:
        itemsize = torch.empty((), dtype=dtype).element_size()
        name = f"{self._root}/data/{key}"
        raw = _read_record(self._archive, name, numel * itemsize, self._path)
        if len(raw) != numel * itemsize:
            raise RefusedArchiveError(
                f"{self._path}: record {name} holds {len(raw)} bytes, not {numel} x {dtype}"
            )
        flat = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return Storage(key, flat)

    def _module_class(self, qualified: str) -> type[ScriptModuleState]:
        if qualified not in self._classes:
            # A subclass per type only records the name; its methods are ScriptModuleState's.
            self._classes[qualified] = type(
                "ScriptModuleState", (ScriptModuleState,), {"type_name": qualified}
            )
        return self._classes[qualified]


def _rebuild_tensor(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` for archive data: a view of a read storage.

    ``requires_grad``, hooks and metadata are dropped: a state dict holds plain tensors.
    """
    if not isinstance(storage, Storage):
        raise RefusedArchiveError(f"a tensor in {DATA_PICKLE} does not refer to a data record")
    if not (_is_count(storage_offset) and _is_shape(size) and _is_shape(stride)):
        raise RefusedArchiveError(f"tensor of record {storage.key} has a malformed shape")
    if len(size) != len(stride):
        raise RefusedArchiveError(f"tensor of record {storage.key} has a malformed shape")
    try:
        return torch.as_strided(storage.flat, tuple(size), tuple(stride), storage_offset)
    except RuntimeError:  # out of the record's bounds
        raise RefusedArchiveError(
            f"tensor of record {storage.key} reaches past the end of its data"
        ) from None


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    """``torch._utils._rebuild_parameter``: the parameter's tensor, as a state dict holds it."""
    if not isinstance(data, torch.Tensor):
        raise RefusedArchiveError(f"a parameter in {DATA_PICKLE} is not a tensor")
    return data


def _same(value: Any, *_: Any) -> Any:
    """``torch.jit._pickle`` list builders and type tags: the plain value itself."""
    return value


# (module, name) of each global a TorchScript data.pkl may name -> what stands for it.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _same,
    ("torch.jit._pickle", "build_doublelist"): _same,
    ("torch.jit._pickle", "build_boollist"): _same,
    ("torch.jit._pickle", "build_tensorlist"): _same,
    ("torch.jit._pickle", "restore_type_tag"): _same,
}


def _collect(
    node: ScriptModuleState,
    prefix: str,
    out: dict[str, torch.Tensor],
    path: Path,
    ancestors: tuple[int, ...],
) -> None:
    if id(node) in ancestors or len(ancestors) > MAX_MODULE_DEPTH:
        raise RefusedArchiveError(f"{path}: the module tree of the archive is cyclic or too deep")
    if not isinstance(node.state, dict):
        raise RefusedArchiveError(
            f"{path} is refused: module {node.type_name} keeps custom state (a TorchScript "
            "__setstate__), which only running the archive's code could restore"
        )
    for name, value in node.state.items():
        if not isinstance(name, str):
            raise RefusedArchiveError(f"{path}: module {node.type_name} has a non-text attribute")
        if isinstance(value, ScriptModuleState):
            _collect(value, f"{prefix}{name}.", out, path, (*ancestors, id(node)))
        elif isinstance(value, torch.Tensor):
            out[f"{prefix}{name}"] = value.detach().clone()


def _archive_root(archive: zipfile.ZipFile, path: Path) -> str:
    roots = {
        name.split("/")[0]
        for name in archive.namelist()
        if name.count("/") == 1 and name.endswith("/" + DATA_PICKLE)
    }
    if len(roots) != 1:
        raise RefusedArchiveError(
            f"{path} is not a TorchScript archive: expected one <root>/{DATA_PICKLE}"
        )
    return roots.pop()


def _check_byteorder(archive: zipfile.ZipFile, root: str, path: Path) -> None:
    name = f"{root}/{BYTEORDER_RECORD}"
    order = "little"  # archives written before torch 2.1 have no record: little-endian
    if name in archive.namelist():
        order = _read_record(archive, name, 16, path).decode("ascii", "replace").strip()
    if order != sys.byteorder:
        raise RefusedArchiveError(
            f"{path} stores {order}-endian tensors; this machine reads {sys.byteorder}-endian"
        )


def _read_record(archive: zipfile.ZipFile, name: str, max_bytes: int, path: Path) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise RefusedArchiveError(f"{path}: the archive has no record {name}") from None
    if info.file_size > max_bytes:
        raise RefusedArchiveError(f"{path}: record {name} is larger than it can be")
    if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 1024:
        raise RefusedArchiveError(f"{path}: record {name} inflates like a zip bomb")
    with archive.open(info) as handle:
        return handle.read(max_bytes)


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_shape(value: Any) -> bool:
    return isinstance(value, tuple | list) and all(_is_count(v) for v in value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
