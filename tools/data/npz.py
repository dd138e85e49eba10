"""Read the arrays of a .npz dataset without pickle and without loading oversized arrays."""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tools.data.files import check_element_count
from tools.errors import InvalidDataset

FLAT_KEYS = ("X", "y")
PRESPLIT_KEYS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)


def read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Either {X, y} or the six pre-split arrays, keyed as in the file.

    Array headers are checked before any data is read: object arrays (which
    only pickle can restore) and arrays past the size limit are refused.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {n.removesuffix(".npy"): n for n in archive.namelist() if n.endswith(".npy")}
            keys = _layout_keys(path, set(members))
            for key in keys:
                _check_header(archive, members[key], path, key)
        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in keys}
    except InvalidDataset:
        raise
    except _READ_ERRORS as exc:
        raise InvalidDataset(f"cannot read {path.name}: {exc}") from exc


def _layout_keys(path: Path, found: set[str]) -> tuple[str, ...]:
    split_keys_found = found & set(PRESPLIT_KEYS)
    if split_keys_found:
        missing = [key for key in PRESPLIT_KEYS if key not in found]
        if missing:
            raise InvalidDataset(
                f"{path.name} is partly pre-split: missing {', '.join(missing)}; a pre-split "
                f"file needs all of {', '.join(PRESPLIT_KEYS)} (or save just X and y)"
            )
        if set(FLAT_KEYS) <= found:
            raise InvalidDataset(
                f"{path.name} holds both X, y and pre-split arrays; keep one layout so it is "
                "clear which sequences are held out for testing"
            )
        return PRESPLIT_KEYS
    if set(FLAT_KEYS) <= found:
        return FLAT_KEYS
    listed = ", ".join(sorted(found)) or "none"
    raise InvalidDataset(
        f"{path.name} must contain arrays X and y (or X_train, y_train, X_val, y_val, "
        f"X_test, y_test); arrays found: {listed}"
    )


def _check_header(archive: zipfile.ZipFile, member: str, path: Path, key: str) -> None:
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:  # 2.0 and 3.0 share the 4-byte header length
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    if dtype.hasobject:
        raise InvalidDataset(
            f"{path.name}: array {key} contains Python objects (pickle); save plain numeric "
            "arrays (labels as str or int), e.g. np.savez(path, X=X.astype('float32'), "
            "y=y.astype(str)): seqtune never unpickles data files"
        )
    check_element_count(math.prod(shape), f"{path.name}: array {key}")
