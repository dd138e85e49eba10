"""Studies on real SQLite storage: create, re-create, find, record, delete; samplers and pruners.

No worker processes here: `DatasetChanged` is checked where a run starts
(`TrialRun.prepare`) with a stub executor that is never asked to train.
"""

from __future__ import annotations

import importlib.util
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from conftest import write_small_npz

from tools import results
from tools.errors import (
    DatasetChanged,
    InvalidConfig,
    NotASeqtuneStudy,
    StudyExists,
    StudyNotFound,
)
from tools.schemas import PrunerSpec, SamplerSpec
from tools.search_space import resolve_search_space, suggest_params
from tools.studies import (
    CONFIG_ATTR,
    DATA_ATTR,
    StudyRequest,
    build_pruner,
    build_sampler,
    create_study,
    delete_study,
    load_study,
    study_names,
    study_summary,
)
from tools.trials import RunPlan, TrialRun
from tools.workspace import Workspace

pytestmark = pytest.mark.anyio


class NoTraining:
    """An executor for runs that must fail before any trial starts."""

    async def run_trial(self, *args: Any) -> Any:
        raise AssertionError("no trial should start")

    def threads_for(self, n_workers: int) -> int:
        return 1


def request(name: str, dataset: str = "d.npz", **kw: Any) -> StudyRequest:
    return StudyRequest(study_name=name, dataset=dataset, **{"max_epochs": 5, **kw})


@pytest.fixture(scope="module")
def gait(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Any]:
    """One study on the builtin gait data (1-2 s to prepare), shared by the module."""
    ws = Workspace(tmp_path_factory.mktemp("gait"))
    return ws, create_study(ws, StudyRequest(study_name="gait", dataset="builtin:gait"))


# Creating


def test_create_on_builtin_gait_reports_per_split_class_counts(gait: tuple[Workspace, Any]) -> None:
    ws, summary = gait
    assert summary.study_name == "gait" and summary.direction == "maximize"
    assert summary.metric == "val_accuracy" and summary.dataset == "builtin:gait"
    assert (summary.timesteps, summary.features) == (64, 3)
    assert sorted(summary.label_names) == ["asymmetric", "normal"]
    assert set(summary.splits) == {"train", "train_original", "val", "test"}
    for split in summary.splits.values():
        assert split.n == sum(split.classes.values())
        assert set(split.classes) == {"asymmetric", "normal"}
    # SMOTE balanced the training split only; the original splits partition the 480 sequences
    assert len(set(summary.splits["train"].classes.values())) == 1
    original = summary.splits["train_original"].classes
    assert original["asymmetric"] < original["normal"]
    assert summary.splits["train"].classes["normal"] == original["normal"]
    assert sum(summary.splits[s].n for s in ("train_original", "val", "test")) == 480
    assert summary.splits["val"].classes["asymmetric"] < summary.splits["val"].classes["normal"]
    assert summary.n_trials == 0 and summary.best_value is None and summary.test_evaluations == 0
    assert summary.counts["COMPLETE"] == 0
    assert Path(summary.artifacts_dir) == ws.study_dir("gait")
    assert (ws.data_dir("gait") / "prepared.json").is_file()
    assert summary.search_space["lstm_units_1"] == {"choices": [16, 32, 64, 96, 128]}


def test_creating_again_with_the_same_config_returns_the_same_study(
    gait: tuple[Workspace, Any],
) -> None:
    ws, first = gait
    again = create_study(ws, StudyRequest(study_name="gait", dataset="builtin:gait"))
    assert again == first
    assert study_names(ws).count("gait") == 1


@pytest.mark.parametrize(
    ("change", "key", "detail"),
    [
        ({"max_epochs": 12}, "max_epochs", "max_epochs: 30 -> 12"),
        ({"metric": "val_loss"}, "metric", "'val_accuracy' -> 'val_loss'"),
        ({"search_space": {"batch_size": [16]}}, "search_space", "search_space"),
        ({"sampler": SamplerSpec(name="random")}, "sampler", "'random'"),
    ],
)
def test_creating_again_with_another_config_names_the_changed_key(
    gait: tuple[Workspace, Any], change: dict[str, Any], key: str, detail: str
) -> None:
    ws, _ = gait
    with pytest.raises(StudyExists) as info:
        create_study(ws, StudyRequest(study_name="gait", dataset="builtin:gait", **change))
    message = str(info.value)
    assert "study 'gait' already exists with a different configuration" in message
    assert detail in message
    changed_keys = re.findall(r"(\w+): ", message.split("(", 1)[1])
    assert key in changed_keys
    assert "seed" not in changed_keys  # only what changed is named


def test_the_same_space_spelled_differently_is_the_same_config(
    ws: Workspace, small_npz: str
) -> None:
    first = create_study(ws, request("spelled", search_space={"batch_size": [16, 32]}))
    again = create_study(
        ws,
        request(
            "spelled",
            search_space={
                "batch_size": {"choices": [16, 32]},
                "lstm_units_1": {"choices": [16, 32, 64, 96, 128]},  # the default, explicit
                "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True},
            },
        ),
    )
    assert again == first


@pytest.mark.parametrize(
    "name",
    ["a/b", "../x", "..", "a..b", "", "x" * 65, "my study", "a\\b", ".hidden", "-x", "é"],
)
def test_invalid_study_names_are_refused(ws: Workspace, name: str) -> None:
    with pytest.raises(InvalidConfig, match="invalid study name"):
        create_study(ws, request(name, dataset="builtin:gait"))
    with pytest.raises(InvalidConfig, match="1-64 letters, digits"):
        load_study(ws, name)
    assert not (ws.root / "studies").exists() or not any((ws.root / "studies").iterdir())


def test_longest_valid_name(ws: Workspace, small_npz: str) -> None:
    name = "A.b_c-" + "x" * 58
    assert len(name) == 64
    assert create_study(ws, request(name)).study_name == name


# Finding


def test_study_not_found_lists_existing_studies_and_a_close_match(
    ws: Workspace, small_npz: str
) -> None:
    with pytest.raises(
        StudyNotFound, match="there are no studies yet; create one with create_study"
    ):
        load_study(ws, "anything")
    for name in ("alpha_gait", "beta"):
        create_study(ws, request(name))
    with pytest.raises(StudyNotFound) as info:
        load_study(ws, "alpha_giat")
    message = str(info.value)
    assert "study 'alpha_giat' not found" in message
    assert "did you mean 'alpha_gait'?" in message
    assert message.endswith("existing studies: alpha_gait, beta")
    with pytest.raises(StudyNotFound) as info:
        study_summary(ws, "zzzzzz")
    assert "did you mean" not in str(info.value) and "alpha_gait, beta" in str(info.value)


def test_a_plain_optuna_study_is_not_a_seqtune_study(ws: Workspace) -> None:
    optuna.create_study(storage=ws.storage(), study_name="plain")
    with pytest.raises(NotASeqtuneStudy, match="was not created by seqtune"):
        load_study(ws, "plain")


def test_config_is_recorded_and_readable_with_plain_optuna(ws: Workspace, small_npz: str) -> None:
    summary = create_study(
        ws, request("rec", metric="val_loss", seed=7, search_space={"batch_size": [16, 32]})
    )
    assert summary.direction == "minimize"
    plain = optuna.load_study(study_name="rec", storage=ws.storage_url)  # no seqtune code
    assert plain.direction == optuna.study.StudyDirection.MINIMIZE
    config = plain.user_attrs[CONFIG_ATTR]
    assert config["dataset"] == "d.npz"
    assert Path(config["dataset_path"]) == ws.root / "d.npz"
    assert re.fullmatch(r"[0-9a-f]{64}", config["dataset_sha256"])
    assert config["metric"] == "val_loss" and config["direction"] == "minimize"
    assert config["seed"] == 7 and config["max_epochs"] == 5
    assert config["sampler"]["name"] == "tpe" and config["pruner"]["name"] == "median"
    assert config["search_space"]["batch_size"] == {"choices": [16, 32]}
    assert config["split"] == {"train": 0.7, "val": 0.15, "test": 0.15}
    data = plain.user_attrs[DATA_ATTR]
    assert data["timesteps"] == 8 and data["features"] == 2
    assert data["counts"]["train"] == summary.splits["train"].classes
    # and the seqtune view agrees with what plain optuna reads
    _, loaded = load_study(ws, "rec")
    assert loaded.model_dump(mode="json") == config


async def test_a_changed_dataset_file_stops_the_next_run(ws: Workspace, small_npz: str) -> None:
    create_study(ws, request("drift"))
    write_small_npz(ws.root / "d.npz", seed=1)  # same shape, other values
    with pytest.raises(DatasetChanged, match=r"changed since study 'drift' was created"):
        await TrialRun(ws, "drift", NoTraining(), RunPlan(n_trials=1)).prepare()
    study = optuna.load_study(study_name="drift", storage=ws.storage_url)
    assert study.trials == []  # refused before asking for any trial
    # the same request now differs in its sha256: refused rather than silently mixed
    with pytest.raises(StudyExists, match="dataset_sha256"):
        create_study(ws, request("drift"))


async def test_a_removed_dataset_file_stops_the_next_run(ws: Workspace, small_npz: str) -> None:
    create_study(ws, request("gone"))
    (ws.root / "d.npz").unlink()
    with pytest.raises(DatasetChanged, match="no longer exists"):
        await TrialRun(ws, "gone", NoTraining(), RunPlan(n_trials=1)).prepare()


async def test_missing_prepared_arrays_are_rebuilt_identically(
    ws: Workspace, small_npz: str
) -> None:
    create_study(ws, request("rebuild"))
    data_dir = ws.data_dir("rebuild")
    before = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.suffix == ".npz"}
    for path in data_dir.iterdir():
        path.unlink()
    run = TrialRun(ws, "rebuild", NoTraining(), RunPlan(n_trials=1))
    await run.prepare()
    after = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.suffix == ".npz"}
    assert set(after) == set(before) and after.keys() >= {"train.npz", "val.npz"}
    for name in before:
        with np.load(data_dir / name) as new:
            old_arrays = np.load(io.BytesIO(before[name]))
            for key in new.files:
                np.testing.assert_array_equal(new[key], old_arrays[key])


# Deleting


def test_delete_study_removes_storage_entry_and_artifacts(ws: Workspace, small_npz: str) -> None:
    create_study(ws, request("doomed"))
    create_study(ws, request("kept"))
    folder = ws.study_dir("doomed")
    assert folder.is_dir()
    removed = delete_study(ws, "doomed")
    assert removed == [f"study 'doomed' in {ws.storage_url}", str(folder)]
    assert not folder.exists()
    assert study_names(ws) == ["kept"]
    assert ws.study_dir("kept").is_dir()
    with pytest.raises(StudyNotFound, match="existing studies: kept"):
        delete_study(ws, "doomed")
    # the name is free again
    assert create_study(ws, request("doomed", max_epochs=9)).max_epochs == 9


# Samplers and pruners

HAS_CMAES = importlib.util.find_spec("cmaes") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.parametrize(
    ("name", "cls", "available"),
    [
        ("tpe", optuna.samplers.TPESampler, True),
        ("random", optuna.samplers.RandomSampler, True),
        ("qmc", optuna.samplers.QMCSampler, True),
        ("cmaes", optuna.samplers.CmaEsSampler, HAS_CMAES),
        ("gp", optuna.samplers.GPSampler, HAS_TORCH),
    ],
)
def test_each_sampler_builds_or_says_what_to_install(
    ws: Workspace, name: str, cls: type, available: bool
) -> None:
    spec = SamplerSpec(name=name, n_startup_trials=2)  # type: ignore[arg-type]
    if not available:
        package = "cmaes" if name == "cmaes" else "torch"
        with pytest.raises(InvalidConfig, match=rf"needs the '{package}' package.*pip install"):
            build_sampler(spec, 0)
        # refused before any data is read or any study is created
        with pytest.raises(InvalidConfig, match=package):
            create_study(ws, request("s", dataset="missing.npz", sampler=spec))
        assert study_names(ws) == []
        return
    sampler = build_sampler(spec, 0)
    assert isinstance(sampler, cls)
    # it drives the define-by-run space without warnings (warnings are errors here)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    space = resolve_search_space(None)
    for i in range(4):
        trial = study.ask()
        params = suggest_params(trial, space)
        assert set(params) >= {"lstm_units_1", "learning_rate"}
        study.tell(trial, float(i))


def test_samplers_are_seeded(ws: Workspace) -> None:
    space = resolve_search_space(None)

    def first_params(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=build_sampler(SamplerSpec(name="random"), seed))
        out = []
        for _ in range(3):
            trial = study.ask()
            out.append(suggest_params(trial, space))
            study.tell(trial, 0.0)
        return out

    assert first_params(5) == first_params(5)
    assert first_params(5) != first_params(6)


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        (
            PrunerSpec(name="median", n_startup_trials=4, n_warmup_steps=2),
            optuna.pruners.MedianPruner,
        ),
        (PrunerSpec(name="percentile", percentile=40.0), optuna.pruners.PercentilePruner),
        (PrunerSpec(name="successive_halving"), optuna.pruners.SuccessiveHalvingPruner),
        (PrunerSpec(name="hyperband", min_resource=1), optuna.pruners.HyperbandPruner),
        (PrunerSpec(name="patient", patience=2), optuna.pruners.PatientPruner),
        (PrunerSpec(name="none"), optuna.pruners.NopPruner),
    ],
)
def test_each_pruner_builds(spec: PrunerSpec, cls: type) -> None:
    pruner = build_pruner(spec, max_epochs=27)
    assert isinstance(pruner, cls)
    if spec.name == "median":
        assert pruner._n_startup_trials == 4 and pruner._n_warmup_steps == 2
    if spec.name == "percentile":
        assert pruner._percentile == 40.0
    if spec.name == "hyperband":
        assert pruner._max_resource == 27 and pruner._min_resource == 1
    if spec.name == "patient":
        assert pruner._patience == 2
    # usable on a real study: report a few steps and ask
    study = optuna.create_study(pruner=pruner, direction="maximize")
    trial = study.ask()
    for step in range(3):
        trial.report(0.1 * step, step)
        assert isinstance(trial.should_prune(), bool)
    study.tell(trial, 0.3)


def test_load_study_uses_the_recorded_sampler_and_pruner(ws: Workspace, small_npz: str) -> None:
    create_study(
        ws,
        request(
            "cfg",
            sampler=SamplerSpec(name="random"),
            pruner=PrunerSpec(name="percentile", percentile=30.0),
        ),
    )
    study, config = load_study(ws, "cfg")
    assert isinstance(study.sampler, optuna.samplers.RandomSampler)
    assert isinstance(study.pruner, optuna.pruners.PercentilePruner)
    assert study.pruner._percentile == 30.0
    assert config.sampler.name == "random"


# Read-only views (tools/results.py)


def add_trials(ws: Workspace, name: str, outcomes: list[tuple[str, float]]) -> None:
    """Record finished trials straight into the storage: (state, value) per trial."""
    study = optuna.load_study(study_name=name, storage=ws.storage_url)
    for state, value in outcomes:
        trial = study.ask({"lstm_units_1": optuna.distributions.CategoricalDistribution([16, 32])})
        trial.set_user_attr("epochs", 3)
        if state == "COMPLETE":
            study.tell(trial, value)
        elif state == "PRUNED":
            trial.report(value, 2)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            trial.set_user_attr("fail_reason", "boom")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)


def test_best_params_list_trials_and_list_studies(ws: Workspace, small_npz: str) -> None:
    create_study(ws, request("views", search_space={"batch_size": 32}))
    empty = results.best_params(ws, "views")
    assert empty.best_trial is None and empty.params == {} and empty.n_trials == 0
    add_trials(
        ws, "views", [("COMPLETE", 0.6), ("FAIL", 0.0), ("COMPLETE", 0.8), ("COMPLETE", 0.7)]
    )
    best = results.best_params(ws, "views")
    assert best.best_trial == 2 and best.best_value == 0.8
    assert best.params == {"lstm_units_1": best.params["lstm_units_1"], "batch_size": 32}
    assert best.counts["COMPLETE"] == 3 and best.counts["FAIL"] == 1 and best.n_trials == 4
    newest = results.list_trials(ws, "views")
    assert [t.number for t in newest.trials] == [3, 2, 1, 0] and newest.total == 4
    assert newest.trials[2].state == "FAIL" and newest.trials[2].reason == "boom"
    ranked = results.list_trials(ws, "views", order="best", limit=2)
    assert [t.number for t in ranked.trials] == [2, 3] and ranked.total == 4
    failed = results.list_trials(ws, "views", states=["FAIL"])
    assert [t.number for t in failed.trials] == [1] and failed.total == 1
    listing = results.list_studies(ws)
    assert [(b.study_name, b.n_trials, b.best_value) for b in listing.studies] == [
        ("views", 4, 0.8)
    ]


def test_best_order_starts_with_the_best_trial(ws: Workspace, small_npz: str) -> None:
    create_study(ws, request("ranked"))
    add_trials(ws, "ranked", [("COMPLETE", 0.7), ("PRUNED", 0.9), ("COMPLETE", 0.8)])
    best = results.best_params(ws, "ranked")
    ranked = results.list_trials(ws, "ranked", order="best")
    assert ranked.trials[0].number == best.best_trial == 2
