"""The data pipeline on real files: loading, refusing bad input, leak-free preparation, storage."""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tools.data import (
    BUILTIN_DATASETS,
    PreparedData,
    RawDataset,
    describe_dataset,
    load_dataset,
    load_prepared_meta,
    load_test_arrays,
    load_training_arrays,
    prepare_dataset,
    save_prepared,
    validate_arrays,
)
from tools.errors import InvalidConfig, InvalidDataset, PathNotAllowed
from tools.schemas import CsvOptions, SplitSpec

SHARED_DATA = Path(
    os.environ.get("SEQTUNE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def make_arrays(
    n: int = 240, minority: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 8, 2) float32, labels "a" / "b" (minority), features off-center.

    The defaults split into exact stratified counts: train 126/42, val 27/9, test 27/9.
    """
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) < round(n * minority), "b", "a")
    X = rng.normal(loc=[3.0, -5.0], scale=[2.0, 0.5], size=(n, 8, 2)).astype(np.float32)
    X[y == "b"] += 1.0
    return X, y


def raw_of(X: np.ndarray, y: np.ndarray) -> RawDataset:
    return RawDataset("test", None, "0" * 64, X, y, None)


def load_npz(root: Path, **arrays: np.ndarray) -> RawDataset:
    np.savez(root / "d.npz", **arrays)
    return load_dataset("d.npz", [root])


def write_csv(root: Path, text: str) -> Path:
    path = root / "d.csv"
    path.write_text(text)
    return path


# Loading


def test_npz_round_trip(root: Path) -> None:
    X, y = make_arrays()
    raw = load_npz(root, X=X, y=y)
    assert raw.X is not None and raw.y is not None and raw.presplit is None
    np.testing.assert_array_equal(raw.X, X)
    np.testing.assert_array_equal(raw.y, y)
    assert raw.X.dtype == np.float32
    assert raw.path == (root / "d.npz").resolve()
    assert raw.sha256 == hashlib.sha256((root / "d.npz").read_bytes()).hexdigest()


def test_presplit_npz_round_trip(root: Path) -> None:
    X, y = make_arrays(60)
    parts = {"train": slice(0, 40), "val": slice(40, 50), "test": slice(50, 60)}
    order = np.random.default_rng(1).permutation(60)
    X, y = X[order], y[order]
    arrays = {
        f"{k}_{name}": a[part] for name, part in parts.items() for k, a in (("X", X), ("y", y))
    }
    raw = load_npz(root, **arrays)
    assert raw.X is None and raw.presplit is not None
    for name, part in parts.items():
        np.testing.assert_array_equal(raw.presplit[name][0], X[part])
        np.testing.assert_array_equal(raw.presplit[name][1], y[part])
    assert describe_dataset(raw).presplit
    prepared = prepare_dataset(raw, split=SplitSpec(), imbalance="none", seed=0)
    np.testing.assert_allclose(unscale(prepared.X_val, prepared), X[40:50], atol=1e-5)
    assert prepared.counts["test"] == {
        "a": int((y[50:] == "a").sum()),
        "b": int((y[50:] == "b").sum()),
    }


def test_int_labels_become_str_and_2d_x_is_one_feature(root: Path) -> None:
    X, y = make_arrays()
    raw = load_npz(root, X=X[:, :, 0], y=(y == "b").astype(np.int64))
    assert raw.X is not None and raw.y is not None
    assert raw.X.shape == (240, 8, 1)
    assert raw.y.dtype.kind == "U" and set(raw.y) == {"0", "1"}


def _bad_arrays() -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    X, y = make_arrays(20)
    nan, inf = X.copy(), X.copy()
    nan[3, 2, 1] = np.nan
    inf[5, 0, 0] = np.inf
    return [
        ("ndim", X[:, :, :, None], y, "3 dimensions (sequences, timesteps, features); got shape"),
        ("lengths", X, y[:-1], "X has 20 sequences but y has 19 labels"),
        ("nan", nan, y, "1 NaN and 0 inf values, first in sequence 3"),
        ("inf", inf, y, "0 NaN and 1 inf values, first in sequence 5"),
        ("one class", X, np.full(20, "a"), "only one class 'a'"),
        ("too few", X[:6], y[:6], "only 6 sequences; need at least 10"),
        ("strings", X.astype(str), y, "X must be numeric"),
    ]


@pytest.mark.parametrize(
    ("X", "y", "message"), [c[1:] for c in _bad_arrays()], ids=[c[0] for c in _bad_arrays()]
)
def test_bad_arrays_are_rejected(root: Path, X: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidDataset, match=re.escape(message)):
        load_npz(root, X=X, y=y)


def test_validate_arrays_rejects_object_x() -> None:
    X, y = make_arrays(20)
    with pytest.raises(InvalidDataset, match="X must be numeric"):
        validate_arrays(X.astype(object), y)


def test_pickled_npz_is_refused(root: Path) -> None:
    X, y = make_arrays(20)
    np.savez(root / "d.npz", X=X.astype(object), y=y)
    with pytest.raises(InvalidDataset, match=r"contains Python objects \(pickle\); save plain"):
        load_dataset("d.npz", [root])


def test_truncated_npz_is_refused(root: Path) -> None:
    X, y = make_arrays()
    buffer = io.BytesIO()
    np.savez(buffer, X=X, y=y)
    (root / "d.npz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InvalidDataset, match=r"cannot read d\.npz"):
        load_dataset("d.npz", [root])


def test_partly_presplit_npz_names_missing_keys(root: Path) -> None:
    X, y = make_arrays()
    with pytest.raises(InvalidDataset, match="missing X_test, y_test"):
        load_npz(root, X_train=X, y_train=y, X_val=X, y_val=y)


def test_oversized_array_is_refused_from_its_header(root: Path) -> None:
    """The header claims 4e8 values; no data follows, so loading it would fail differently."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1, 1), np.float32))
    header["shape"] = (20_000, 10_000, 2)
    with zipfile.ZipFile(root / "d.npz", "w") as archive:
        for key in ("X", "y"):
            with archive.open(f"{key}.npy", "w") as stream:
                np.lib.format.write_array_header_1_0(stream, header)
    with pytest.raises(InvalidDataset, match="400,000,000 values; seqtune accepts at most"):
        load_dataset("d.npz", [root])


def test_files_over_2_gib_are_refused_before_reading(root: Path) -> None:
    with (root / "big.csv").open("wb") as stream:
        stream.truncate(2 * 1024**3 + 1)  # sparse: takes no disk space
    with pytest.raises(InvalidDataset, match=r"big\.csv is 2\.0 GiB; seqtune reads files up to 2"):
        load_dataset("big.csv", [root])


def test_builtin_gait_and_unknown_builtin() -> None:
    raw = load_dataset("builtin:gait", [])
    assert raw.X is not None and raw.X.shape == (480, 64, 3) and raw.path is None
    assert raw.sha256 == load_dataset("builtin:gait", []).sha256
    with pytest.raises(InvalidDataset, match=BUILTIN_DATASETS[0]):
        load_dataset("builtin:nope", [])


# CSV

CSV = "sequence_id,label,t,ax,ay\n" + "".join(
    f"s{s},{'up' if s % 3 else 'down'},{t},{s + t / 10},{-t}\n" for s in range(12) for t in range(4)
)


def test_csv_long_format(root: Path) -> None:
    lines = CSV.splitlines(keepends=True)
    write_csv(root, lines[0] + "".join(reversed(lines[1:])))  # time column restores the order
    raw = load_dataset("d.csv", [root], CsvOptions(time_column="t"))
    assert raw.X is not None and raw.y is not None
    assert raw.X.shape == (12, 4, 2)
    assert raw.y[11] == "down"  # s0 appears last in the reversed file
    np.testing.assert_allclose(raw.X[11], [[0, 0], [0.1, -1], [0.2, -2], [0.3, -3]])


def test_csv_non_numeric_feature(root: Path) -> None:
    write_csv(root, CSV.replace("s0,down,1,0.1,", "s0,down,1,abc,"))
    with pytest.raises(InvalidDataset, match="row 3, column 'ax': 'abc' is not a number"):
        load_dataset("d.csv", [root])


def test_csv_unequal_lengths_need_sequence_length(root: Path) -> None:
    write_csv(root, CSV + "s1,up,4,9,9\ns1,up,5,9,9\n")
    with pytest.raises(InvalidDataset, match=r"unequal lengths, from 4 steps.*sequence_length=6"):
        load_dataset("d.csv", [root])
    padded = load_dataset("d.csv", [root], CsvOptions(sequence_length=5))
    assert padded.X is not None and padded.X.shape == (12, 5, 3)  # t is a feature by default
    np.testing.assert_array_equal(padded.X[0, 4], [0, 0, 0])  # s0 padded with zeros
    np.testing.assert_array_equal(padded.X[1, 4], [4, 9, 9])  # s1 truncated after 5 steps


def test_csv_missing_column_and_changing_label(root: Path) -> None:
    write_csv(root, CSV)
    with pytest.raises(
        InvalidDataset, match="no column 'class'; columns found: sequence_id, label"
    ):
        load_dataset("d.csv", [root], CsvOptions(label_column="class"))
    write_csv(root, CSV.replace("s0,down,2,", "s0,up,2,"))
    with pytest.raises(InvalidDataset, match="label must be the same on every row"):
        load_dataset("d.csv", [root])


# Paths


def test_paths_outside_the_roots_are_refused(root: Path, tmp_path: Path) -> None:
    X, y = make_arrays()
    np.savez(tmp_path / "outside.npz", X=X, y=y)
    (root / "link.npz").symlink_to(tmp_path / "outside.npz")
    for source in ("../outside.npz", str(tmp_path / "outside.npz"), "link.npz"):
        with pytest.raises(PathNotAllowed, match=re.escape(f"outside the allowed folders: {root}")):
            load_dataset(source, [root])


def test_missing_file_lists_what_is_there(root: Path) -> None:
    (root / "a.npz").touch()
    (root / "b.csv").touch()
    (root / "notes.txt").touch()
    with pytest.raises(
        InvalidDataset, match=r"dataset file not found: .*; files in .*: a.npz, b.csv$"
    ):
        load_dataset("c.npz", [root])
    with pytest.raises(InvalidDataset, match=r"unsupported dataset file 'notes\.txt'"):
        load_dataset("notes.txt", [root])


# Preparation


def find_rows(rows: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Index in X of each row of `rows` (asserting every one is there, up to float32 rounding)."""
    distance = np.abs(rows.reshape(len(rows), 1, -1) - X.reshape(1, len(X), -1)).max(axis=2)
    assert (distance.min(axis=1) < 1e-4).all(), "a row is not one of the original sequences"
    return distance.argmin(axis=1)


def unscale(X: np.ndarray, prepared: PreparedData) -> np.ndarray:
    return X * prepared.scaler_std + prepared.scaler_mean


def test_split_is_stratified_and_seeded() -> None:
    X, y = make_arrays()
    prepared = prepare_dataset(raw_of(X, y), split=SplitSpec(), imbalance="none", seed=3)
    assert [len(prepared.y_train), len(prepared.y_val), len(prepared.y_test)] == [168, 36, 36]
    for labels in (prepared.y_train, prepared.y_val, prepared.y_test):
        assert labels.mean() == pytest.approx(0.25)
    again = prepare_dataset(raw_of(X, y), split=SplitSpec(), imbalance="none", seed=3)
    other = prepare_dataset(raw_of(X, y), split=SplitSpec(), imbalance="none", seed=4)
    np.testing.assert_array_equal(prepared.X_train, again.X_train)
    np.testing.assert_array_equal(prepared.y_test, again.y_test)
    assert not np.array_equal(prepared.X_train, other.X_train)


def test_scaler_is_fitted_on_train_only() -> None:
    X, y = make_arrays()
    prepared = prepare_dataset(raw_of(X, y), split=SplitSpec(), imbalance="none", seed=0)
    flat = prepared.X_train.reshape(-1, 2)
    np.testing.assert_allclose(flat.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(flat.std(axis=0), 1, atol=1e-5)
    train_rows = X[find_rows(unscale(prepared.X_train, prepared), X)]
    np.testing.assert_allclose(
        prepared.scaler_mean, train_rows.reshape(-1, 2).mean(axis=0, dtype=np.float64), rtol=1e-6
    )
    assert not np.allclose(prepared.scaler_mean, X.reshape(-1, 2).mean(axis=0), rtol=1e-6, atol=0)


def test_smote_touches_train_only() -> None:
    X, y = make_arrays()
    prepared = prepare_dataset(raw_of(X, y), split=SplitSpec(), imbalance="smote", seed=0)
    assert prepared.counts["train_original"] == {"a": 126, "b": 42}
    assert prepared.counts["train"] == {"a": 126, "b": 126}
    assert prepared.X_train.shape == (252, 8, 2) and len(prepared.y_train) == 252
    assert len(prepared.y_val) == len(prepared.y_test) == 36
    for X_part, y_part in ((prepared.X_val, prepared.y_val), (prepared.X_test, prepared.y_test)):
        rows = find_rows(unscale(X_part, prepared), X)
        assert len(set(rows.tolist())) == len(rows)
        np.testing.assert_array_equal(np.array(prepared.label_names)[y_part], y[rows])
    assert prepared.class_weight is None


def test_class_weight_is_balanced_on_fitted_labels() -> None:
    X, y = make_arrays()
    prepared = prepare_dataset(raw_of(X, y), split=SplitSpec(), imbalance="class_weight", seed=0)
    assert prepared.class_weight == pytest.approx({0: 168 / (2 * 126), 1: 168 / (2 * 42)})
    mixed = prepare_dataset(
        raw_of(X, y), split=SplitSpec(), imbalance="smote+class_weight", seed=0, smote_ratio=0.5
    )
    assert mixed.counts["train"] == {"a": 126, "b": 63}
    assert mixed.class_weight == pytest.approx({0: 189 / (2 * 126), 1: 189 / (2 * 63)})


def test_smote_needs_more_minority_samples_than_k() -> None:
    X, y = make_arrays()  # 42 "b" in train
    with pytest.raises(
        InvalidDataset,
        match="'b' has only 42 sequences in the training split; SMOTE needs more than "
        "k_neighbors=42: use smote_k_neighbors=41 or imbalance='class_weight'",
    ):
        prepare_dataset(
            raw_of(X, y), split=SplitSpec(), imbalance="smote", seed=0, smote_k_neighbors=42
        )
    three = (np.arange(240) % 3).astype(str)
    with pytest.raises(InvalidConfig, match="binary datasets only"):
        prepare_dataset(
            raw_of(X, three), split=SplitSpec(), imbalance="smote", seed=0, smote_ratio=0.5
        )


def test_binary_positive_class_is_the_minority() -> None:
    X, y = make_arrays()
    swapped = np.where(y == "a", "z", "b")  # minority "b" sorts first now
    for labels, expected in ((y, ["a", "b"]), (swapped, ["z", "b"])):
        prepared = prepare_dataset(raw_of(X, labels), split=SplitSpec(), imbalance="none", seed=0)
        assert prepared.label_names == expected
        assert prepared.y_train.mean() < 0.5


def test_describe_warns_about_small_classes() -> None:
    X, y = make_arrays(200, minority=0.03)
    summary = describe_dataset(raw_of(X, y))
    assert summary.classes == {"a": 194, "b": 6}
    assert summary.imbalance_ratio == pytest.approx(194 / 6, abs=1e-3)
    assert any(
        "'b' has only 6 sequences (about 4 in the training split)" in w
        and "use smote_k_neighbors=3 or imbalance='class_weight'" in w
        for w in summary.warnings
    )


# Storage


def test_save_and_load_without_the_test_file(tmp_path: Path) -> None:
    X, y = make_arrays()
    prepared = prepare_dataset(raw_of(X, y), split=SplitSpec(), imbalance="class_weight", seed=0)
    save_prepared(prepared, tmp_path / "prepared")
    X_test, y_test = load_test_arrays(tmp_path / "prepared")
    np.testing.assert_array_equal(X_test, prepared.X_test)
    np.testing.assert_array_equal(y_test, prepared.y_test)
    meta = load_prepared_meta(tmp_path / "prepared")
    assert meta["class_weight"] == {"0": 168 / (2 * 126), "1": 168 / (2 * 42)}
    assert (meta["timesteps"], meta["features"], meta["n_classes"]) == (8, 2, 2)
    assert meta["scaler_mean"] == prepared.scaler_mean.tolist()

    (tmp_path / "prepared" / "test.npz").unlink()  # training must not need the test split
    arrays = load_training_arrays(tmp_path / "prepared")
    np.testing.assert_array_equal(arrays.X_train, prepared.X_train)
    np.testing.assert_array_equal(arrays.y_val, prepared.y_val)
    assert arrays.class_weight == prepared.class_weight and arrays.n_classes == 2
    assert arrays.label_names == ["a", "b"]
    with pytest.raises(InvalidDataset, match=r"test\.npz is missing"):
        load_test_arrays(tmp_path / "prepared")
    left = sorted(p.name for p in (tmp_path / "prepared").iterdir())
    assert left == ["prepared.json", "train.npz", "val.npz"]  # no temp files left over


# The shared real datasets


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (set SEQTUNE_SHARED_DATA)")
    return SHARED_DATA


def test_italypower_imbalanced(shared_data: Path) -> None:
    raw = load_dataset("italypower_imbalanced.npz", [shared_data])
    assert describe_dataset(raw).classes == {"1": 547, "2": 137}
    prepared = prepare_dataset(raw, split=SplitSpec(), imbalance="smote", seed=0)
    assert prepared.label_names == ["1", "2"]
    assert prepared.X_train.shape[1:] == (24, 1)
    assert prepared.counts["train"]["1"] == prepared.counts["train"]["2"]


def test_basicmotions(shared_data: Path) -> None:
    raw = load_dataset("basicmotions.npz", [shared_data])
    prepared = prepare_dataset(raw, split=SplitSpec(), imbalance="class_weight", seed=0)
    assert prepared.label_names == ["Badminton", "Running", "Standing", "Walking"]
    assert prepared.X_val.shape[1:] == (100, 6)
    assert set(prepared.y_val.tolist()) == set(prepared.y_test.tolist()) == {0, 1, 2, 3}
