"""Which dataset files may be read: confinement to the allowed folders, type and size limits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from tools.errors import InvalidDataset, PathNotAllowed

SUFFIXES = (".npz", ".csv")
MAX_FILE_BYTES = 2 * 1024**3
MAX_ELEMENTS = 200_000_000
_LISTED_FILES = 10


def resolve_dataset_path(source: str, roots: Sequence[Path]) -> Path:
    """The real path of `source`, which must be a .npz or .csv file inside one of `roots`.

    Relative paths resolve against roots[0]. Symlinks are resolved before the
    containment check, so a link inside a root cannot point outside it. The
    containment check comes before the existence check, so errors never reveal
    whether a file exists outside the allowed folders.
    """
    if not roots:
        raise PathNotAllowed("no dataset folders are configured; the server cannot read files")
    _check_suffix(Path(source), source)
    allowed = [root.resolve() for root in roots]
    requested = Path(source) if Path(source).is_absolute() else allowed[0] / source
    try:
        resolved = requested.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise InvalidDataset(f"cannot resolve dataset path {source!r}: {exc}") from exc
    if not any(resolved.is_relative_to(root) for root in allowed):
        folders = ", ".join(str(root) for root in allowed)
        raise PathNotAllowed(
            f"dataset path {source!r} resolves to {resolved}, outside the allowed folders: "
            f"{folders}; copy the file into one of them"
        )
    if not resolved.exists():
        raise InvalidDataset(f"dataset file not found: {resolved}; {_listing(resolved, allowed)}")
    if not resolved.is_file():
        raise InvalidDataset(f"dataset path {source!r} is not a regular file: {resolved}")
    _check_suffix(resolved, source)
    return resolved


def check_file_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InvalidDataset(
            f"{path.name} is {size / 1024**3:.1f} GiB; seqtune reads files up to "
            f"{MAX_FILE_BYTES // 1024**3} GiB: subsample or shorten the sequences"
        )


def check_element_count(n_elements: int, what: str) -> None:
    if n_elements > MAX_ELEMENTS:
        raise InvalidDataset(
            f"{what} has {n_elements:,} values; seqtune accepts at most {MAX_ELEMENTS:,} "
            "per array: subsample, shorten or downsample the sequences"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_suffix(path: Path, source: str) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise InvalidDataset(
            f"unsupported dataset file {source!r}: use a .npz file (arrays X and y) or a "
            "long-format .csv file (one row per time step), or builtin:gait"
        )


def _listing(missing: Path, allowed: list[Path]) -> str:
    """Name the dataset files next to the missing one, so the caller can pick the right one."""
    folder = missing.parent
    if not folder.is_dir():
        folder = allowed[0]
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not names:
        return f"no .npz or .csv files in {folder} (builtin:gait needs no file)"
    shown = ", ".join(names[:_LISTED_FILES])
    more = f" and {len(names) - _LISTED_FILES} more" if len(names) > _LISTED_FILES else ""
    return f"files in {folder}: {shown}{more}"
