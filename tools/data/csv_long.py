"""Read a long-format CSV dataset: one row per time step, sequences told apart by an id column."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.data.files import check_element_count
from tools.errors import InvalidDataset
from tools.schemas import CsvOptions


@dataclass(frozen=True)
class _Columns:
    """Positions of the columns that matter, in one header."""

    id: int
    label: int
    time: int | None
    features: list[int]
    names: list[str]


@dataclass
class _Sequence:
    label: str
    first_row: int
    steps: list[list[float]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


def read_long_csv(path: Path, options: CsvOptions) -> tuple[np.ndarray, np.ndarray]:
    """X (n, timesteps, features) float64 and y (n,) str, sequences in order of first appearance."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            header = [name.strip() for name in next(reader, [])]
            columns = _locate_columns(header, options, path)
            sequences = _group_rows(_data_rows(reader, len(header), path), columns, path)
    except UnicodeDecodeError as exc:
        raise InvalidDataset(f"cannot read {path.name}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise InvalidDataset(f"cannot read {path.name}: {exc}") from exc
    if not sequences:
        raise InvalidDataset(f"{path.name} has a header but no data rows")
    return _to_arrays(sequences, options.sequence_length, path)


def _locate_columns(header: list[str], options: CsvOptions, path: Path) -> _Columns:
    if not header:
        raise InvalidDataset(f"{path.name} is empty; expected a header row naming the columns")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise InvalidDataset(f"{path.name}: column names must be unique; repeated: {duplicated}")
    special = [options.id_column, options.label_column]
    if options.time_column is not None:
        special.append(options.time_column)
    features = options.feature_columns or [n for n in header if n not in special]
    missing = [name for name in [*special, *features] if name not in header]
    if missing:
        raise InvalidDataset(
            f"{path.name} has no column {', '.join(repr(n) for n in missing)}; columns found: "
            f"{', '.join(header)} (set csv.id_column, csv.label_column, csv.feature_columns)"
        )
    leaking = [n for n in features if n in (options.id_column, options.label_column)]
    if leaking:
        raise InvalidDataset(f"feature_columns must not include the id or label column: {leaking}")
    if not features:
        raise InvalidDataset(f"{path.name} has no feature columns besides id, label and time")
    time = header.index(options.time_column) if options.time_column is not None else None
    return _Columns(
        id=header.index(options.id_column),
        label=header.index(options.label_column),
        time=time,
        features=[header.index(name) for name in features],
        names=features,
    )


def _data_rows(
    reader: Iterator[list[str]], width: int, path: Path
) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of each non-blank row, checking the field count."""
    row_number = 1
    for row in reader:
        row_number += 1
        if not row:
            continue
        if len(row) != width:
            raise InvalidDataset(
                f"{path.name} row {row_number}: expected {width} fields like the header, "
                f"found {len(row)}"
            )
        yield row_number, [cell.strip() for cell in row]


def _group_rows(
    rows: Iterator[tuple[int, list[str]]], columns: _Columns, path: Path
) -> dict[str, _Sequence]:
    sequences: dict[str, _Sequence] = {}
    n_values = 0
    for row_number, cells in rows:
        label = cells[columns.label]
        sequence = sequences.setdefault(cells[columns.id], _Sequence(label, row_number))
        if label != sequence.label:
            raise InvalidDataset(
                f"{path.name}: sequence {cells[columns.id]!r} has label {sequence.label!r} at row "
                f"{sequence.first_row} but {label!r} at row {row_number}; the label must be "
                "the same on every row of a sequence"
            )
        values = [cells[i] for i in columns.features]
        sequence.steps.append(_numbers(values, columns.names, row_number, path))
        if columns.time is not None:
            time = cells[columns.time]
            sequence.times.append(_numbers([time], ["time column"], row_number, path)[0])
        n_values += len(values)
        check_element_count(n_values, path.name)
    return sequences


def _numbers(cells: list[str], names: list[str], row_number: int, path: Path) -> list[float]:
    try:
        return [float(cell) for cell in cells]
    except ValueError:
        name, cell = next((n, c) for n, c in zip(names, cells, strict=True) if not _is_number(c))
        raise InvalidDataset(
            f"{path.name} row {row_number}, column {name!r}: {cell!r} is not a number; "
            "feature columns must be numeric (choose them with csv.feature_columns)"
        ) from None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _to_arrays(
    sequences: dict[str, _Sequence], length: int | None, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    lengths = {sid: len(seq.steps) for sid, seq in sequences.items()}
    shortest, longest = min(lengths, key=lengths.__getitem__), max(lengths, key=lengths.__getitem__)
    if length is None and lengths[shortest] != lengths[longest]:
        raise InvalidDataset(
            f"{path.name}: sequences have unequal lengths, from {lengths[shortest]} steps "
            f"({shortest!r}) to {lengths[longest]} ({longest!r}); set csv.sequence_length to "
            f"pad with zeros at the end or truncate, e.g. sequence_length={lengths[longest]}"
        )
    timesteps = length or lengths[longest]
    n_features = len(next(iter(sequences.values())).steps[0])
    X = np.zeros((len(sequences), timesteps, n_features))
    for i, sequence in enumerate(sequences.values()):
        steps = np.asarray(sequence.steps)
        if sequence.times:
            steps = steps[np.argsort(sequence.times, kind="stable")]
        X[i, : len(steps)] = steps[:timesteps]
    y = np.array([sequence.label for sequence in sequences.values()], dtype=str)
    return X, y
