"""Create, find, summarise and delete studies; build their samplers and pruners.

A study records its whole configuration (`StudyConfig`) in its user attrs,
so any process that opens the storage (tomorrow, another client, the plain
`optuna` CLI) sees how it was made and behaves the same.
"""

from __future__ import annotations

import difflib
import hashlib
import shutil
from pathlib import Path
from typing import Any

import optuna
from pydantic import BaseModel, Field

from tools.data import describe_dataset, load_dataset, load_prepared_meta, prepare_dataset
from tools.data import save_prepared as save_prepared_data
from tools.errors import (
    DatasetChanged,
    InvalidConfig,
    NotASeqtuneStudy,
    StudyExists,
    StudyNotFound,
)
from tools.schemas import (
    CsvOptions,
    Imbalance,
    Metric,
    PrunerSpec,
    SamplerSpec,
    SplitSpec,
    StudyConfig,
    metric_direction,
)
from tools.search_space import resolve_search_space, space_to_json
from tools.workspace import Workspace, validate_study_name

CONFIG_ATTR = "seqtune_config"
DATA_ATTR = "seqtune_data"
TEST_USES_ATTR = "seqtune_test_evaluations"


class StudyRequest(BaseModel):
    """What a user asks for when creating a study (defaults follow the guide)."""

    study_name: str
    dataset: str = "builtin:gait"
    csv: CsvOptions | None = None
    metric: Metric = "val_accuracy"
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    search_space: dict[str, Any] | None = None
    imbalance: Imbalance = "smote"
    smote_k_neighbors: int = Field(5, ge=1, le=50)
    smote_ratio: float | None = Field(None, gt=0, le=1)
    split: SplitSpec = Field(default_factory=SplitSpec)
    max_epochs: int = Field(30, ge=1, le=1000)
    patience: int = Field(5, ge=1, le=1000)
    seed: int = Field(42, ge=0, le=2**31 - 1)


class SplitInfo(BaseModel):
    n: int
    classes: dict[str, int]


class StudySummary(BaseModel):
    study_name: str
    direction: str
    metric: str
    dataset: str
    dataset_sha256: str
    timesteps: int
    features: int
    label_names: list[str]
    splits: dict[str, SplitInfo] = Field(
        description="Class counts per split; 'train' is after resampling, 'train_original' before."
    )
    sampler: SamplerSpec
    pruner: PrunerSpec
    search_space: dict[str, dict[str, object]]
    imbalance: str
    max_epochs: int
    patience: int
    seed: int
    n_trials: int
    counts: dict[str, int] = Field(description="Trials by state.")
    best_value: float | None
    best_trial: int | None
    test_evaluations: int
    artifacts_dir: str
    storage: str


def create_study(ws: Workspace, request: StudyRequest) -> StudySummary:
    """Validate everything, prepare the data, then create (or return the identical) study."""
    name = validate_study_name(request.study_name)
    space = resolve_search_space(request.search_space)
    build_sampler(request.sampler, request.seed)  # fail now on a sampler we cannot build
    raw = load_dataset(request.dataset, ws.data_roots, request.csv)
    config = StudyConfig(
        dataset=request.dataset,
        dataset_path=str(raw.path) if raw.path else None,
        dataset_sha256=raw.sha256,
        csv=request.csv,
        metric=request.metric,
        direction=metric_direction(request.metric),
        sampler=request.sampler,
        pruner=request.pruner,
        search_space=space_to_json(space),
        imbalance=request.imbalance,
        smote_k_neighbors=request.smote_k_neighbors,
        smote_ratio=request.smote_ratio,
        split=request.split,
        max_epochs=request.max_epochs,
        patience=request.patience,
        seed=request.seed,
    )
    existing = _find_config(ws, name)
    if existing is not None:
        _ensure_same(name, existing, config)
        ensure_prepared(ws, name, config)
        return study_summary(ws, name)
    _prepare(raw, config, ws.data_dir(name))
    try:
        study = optuna.create_study(
            storage=ws.storage(), study_name=name, direction=config.direction
        )
    except optuna.exceptions.DuplicatedStudyError:
        return create_study(ws, request)  # another process won the race: compare with theirs
    study.set_user_attr(CONFIG_ATTR, config.model_dump(mode="json"))
    study.set_user_attr(DATA_ATTR, _data_record(ws.data_dir(name)))
    study.set_user_attr(TEST_USES_ATTR, 0)
    return study_summary(ws, name)


def _data_record(data_dir: Path) -> dict[str, Any]:
    meta = load_prepared_meta(data_dir)
    keys = ("timesteps", "features", "label_names", "counts", "n_classes")
    return {key: meta[key] for key in keys}


def _find_config(ws: Workspace, name: str) -> StudyConfig | None:
    try:
        return load_study(ws, name)[1]
    except StudyNotFound:
        return None


def _ensure_same(name: str, old: StudyConfig, new: StudyConfig) -> None:
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    changed = [key for key in after if before.get(key) != after[key]]
    if changed:
        details = "; ".join(f"{k}: {before.get(k)!r} -> {after[k]!r}" for k in changed)
        raise StudyExists(
            f"study '{name}' already exists with a different configuration ({details}); "
            "choose a new study name, or delete the old study first"
        )


def study_names(ws: Workspace) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(ws.storage(), False))


def load_study(ws: Workspace, name: str, resume: bool = False) -> tuple[optuna.Study, StudyConfig]:
    """Open a seqtune study with its recorded sampler and pruner.

    With `resume`, the sampler is seeded with `seed + number of trials so
    far`, so a resumed study does not replay the params of its first run
    while a fresh study with the same config still repeats exactly.
    """
    validate_study_name(name)
    storage = ws.storage()
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        raise StudyNotFound(_not_found_message(ws, name)) from None
    config = recorded_config(storage, study_id, name, ws.storage_label)
    offset = len(storage.get_all_trials(study_id, deepcopy=False)) if resume else 0
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=build_sampler(config.sampler, config.seed + offset),
        pruner=build_pruner(config.pruner, config.max_epochs),
    )
    return study, config


def recorded_config(
    storage: optuna.storages.BaseStorage, study_id: int, name: str, where: str
) -> StudyConfig:
    """The configuration create_study recorded in the study's user attrs."""
    attrs = storage.get_study_user_attrs(study_id)
    if CONFIG_ATTR not in attrs:
        raise NotASeqtuneStudy(
            f"study '{name}' exists in {where} but was not created by seqtune "
            "(no recorded configuration); create a new study with create_study"
        )
    return StudyConfig.model_validate(attrs[CONFIG_ATTR])


def _not_found_message(ws: Workspace, name: str) -> str:
    names = study_names(ws)
    if not names:
        return f"study '{name}' not found: there are no studies yet; create one with create_study"
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return f"study '{name}' not found{hint}; existing studies: {', '.join(names)}"


def build_sampler(spec: SamplerSpec, seed: int) -> optuna.samplers.BaseSampler:
    startup = spec.n_startup_trials
    if spec.name == "tpe":
        # constant_liar keeps parallel workers from proposing the same point.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    if spec.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if spec.name == "cmaes":
        return _optional_sampler(
            "cmaes",
            "cmaes",
            lambda: optuna.samplers.CmaEsSampler(
                seed=seed, n_startup_trials=startup, warn_independent_sampling=False
            ),
        )
    return _optional_sampler(
        "gp",
        "torch",
        lambda: optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=startup, warn_independent_sampling=False
        ),
    )


def _optional_sampler(name: str, module: str, make: Any) -> optuna.samplers.BaseSampler:
    try:
        __import__(module)
    except ImportError:
        raise InvalidConfig(
            f"sampler '{name}' needs the '{module}' package, which is not installed; "
            f"install it (pip install {module}) or use sampler 'tpe'"
        ) from None
    sampler: optuna.samplers.BaseSampler = make()
    return sampler


def build_pruner(spec: PrunerSpec, max_epochs: int) -> optuna.pruners.BasePruner:
    if spec.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps
        )
    if spec.name == "percentile":
        return optuna.pruners.PercentilePruner(
            spec.percentile,
            n_startup_trials=spec.n_startup_trials,
            n_warmup_steps=spec.n_warmup_steps,
        )
    if spec.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.min_resource, reduction_factor=spec.reduction_factor
        )
    if spec.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.min_resource,
            max_resource=max_epochs,
            reduction_factor=spec.reduction_factor,
        )
    if spec.name == "patient":
        return optuna.pruners.PatientPruner(None, patience=spec.patience)
    return optuna.pruners.NopPruner()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_prepared(ws: Workspace, name: str, config: StudyConfig) -> Path:
    """Refuse a changed dataset file; rebuild the prepared arrays if they went missing."""
    if config.dataset_path is not None:
        path = Path(config.dataset_path)
        if not path.is_file():
            raise DatasetChanged(
                f"study '{name}' was built from {path}, which no longer exists; restore the "
                "file or create a new study"
            )
        if file_sha256(path) != config.dataset_sha256:
            raise DatasetChanged(
                f"dataset {path} changed since study '{name}' was created (sha256 differs); "
                "results would not be comparable: restore the file or create a new study"
            )
    data_dir = ws.data_dir(name)
    if not (data_dir / "prepared.json").is_file():
        _prepare(load_dataset(config.dataset, ws.data_roots, config.csv), config, data_dir)
    return data_dir


def prepare_here(ws: Workspace, name: str, config: StudyConfig, dataset: str | None = None) -> Path:
    """The study's prepared splits on another machine, from its own copy of the dataset.

    The copy is found in this machine's data folders (`dataset`, else the
    recorded name) and must have the recorded sha256: the same file, split
    and prepared the same seeded way, gives the same arrays.
    """
    data_dir = ws.data_dir(name)
    if (data_dir / "prepared.json").is_file():
        return data_dir
    raw = load_dataset(dataset or config.dataset, ws.data_roots, config.csv)
    if raw.sha256 != config.dataset_sha256:
        raise DatasetChanged(
            f"{raw.path or raw.source} is not the dataset study '{name}' was built from "
            "(sha256 differs); point --dataset (or --data-root) at a copy of that file"
        )
    _prepare(raw, config, data_dir)
    return data_dir


def _prepare(raw: Any, config: StudyConfig, data_dir: Path) -> None:
    prepared = prepare_dataset(
        raw,
        split=config.split,
        imbalance=config.imbalance,
        seed=config.seed,
        smote_k_neighbors=config.smote_k_neighbors,
        smote_ratio=config.smote_ratio,
    )
    save_prepared_data(prepared, data_dir)


def count_states(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    counts = {state.name: 0 for state in optuna.trial.TrialState}
    for trial in trials:
        counts[trial.state.name] += 1
    return counts


_SUMMARY_FROM_CONFIG = (
    "direction",
    "metric",
    "dataset",
    "dataset_sha256",
    "sampler",
    "pruner",
    "search_space",
    "imbalance",
    "max_epochs",
    "patience",
    "seed",
)


def study_summary(ws: Workspace, name: str) -> StudySummary:
    study, config = load_study(ws, name)
    attrs = study.user_attrs
    data = attrs.get(DATA_ATTR, {})
    trials = study.get_trials(deepcopy=False)
    best = best_trial_or_none(study)
    splits = {
        split: SplitInfo(n=sum(counts.values()), classes=counts)
        for split, counts in data.get("counts", {}).items()
    }
    recorded = {field: getattr(config, field) for field in _SUMMARY_FROM_CONFIG}
    return StudySummary(
        study_name=name,
        **recorded,
        timesteps=data.get("timesteps", 0),
        features=data.get("features", 0),
        label_names=data.get("label_names", []),
        splits=splits,
        n_trials=len(trials),
        counts=count_states(trials),
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        test_evaluations=int(attrs.get(TEST_USES_ATTR, 0)),
        artifacts_dir=str(ws.study_dir(name)),
        storage=ws.storage_label,
    )


def best_trial_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def delete_study(ws: Workspace, name: str) -> list[str]:
    """Delete the study from storage and its artifacts folder; returns what was removed."""
    load_study(ws, name)  # raises a helpful StudyNotFound
    optuna.delete_study(study_name=name, storage=ws.storage())
    removed = [f"study '{name}' in {ws.storage_label}"]
    folder = ws.study_dir(name)
    if folder.exists():
        shutil.rmtree(folder)
        removed.append(str(folder))
    return removed


def describe(ws: Workspace, dataset: str, csv: CsvOptions | None = None) -> Any:
    """Validate and summarise a dataset before any study uses it."""
    return describe_dataset(load_dataset(dataset, ws.data_roots, csv))
