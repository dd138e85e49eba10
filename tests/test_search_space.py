"""The BiLSTM search space: the guide's defaults, narrowing, refusals, and sampling on Optuna.

Pure Python: no worker, no storage file (sampling uses in-memory Optuna studies).
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.errors import InvalidSearchSpace
from tools.search_space import (
    DEFAULT_SPACE,
    ParamSpec,
    check_enqueued,
    effective_params,
    resolve_search_space,
    space_to_json,
    suggest_params,
)

GUIDE_SPACE = {
    "lstm_units_1": {"choices": [16, 32, 64, 96, 128]},
    "use_second_lstm": {"choices": [True, False]},
    "lstm_units_2": {"choices": [8, 16, 24, 32, 48]},
    "dense_units": {"choices": [16, 32, 48, 64]},
    "dropout_rate": {"low": 0.2, "high": 0.5},
    "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True},
    "optimizer_choice": {"choices": ["adam", "rmsprop"]},
    "batch_size": {"choices": [16, 32, 64]},
}


def memory_study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))


# Defaults and narrowing


def test_defaults_are_the_guides_space_in_order() -> None:
    for space in (resolve_search_space(None), resolve_search_space({})):
        assert space_to_json(space) == GUIDE_SPACE
        assert list(space) == list(GUIDE_SPACE)  # the order params are asked in


def test_resolving_does_not_mutate_the_defaults() -> None:
    resolve_search_space({"lstm_units_1": [32]})
    assert DEFAULT_SPACE["lstm_units_1"].choices == [16, 32, 64, 96, 128]


def test_narrowing_replaces_only_the_named_entries() -> None:
    space = resolve_search_space(
        {
            "lstm_units_1": {"choices": [32, 64]},
            "dropout_rate": {"low": 0.3, "high": 0.4},
            "learning_rate": {"low": 1e-4, "high": 5e-4, "log": True},
            "use_second_lstm": {"value": False},
        }
    )
    compact = space_to_json(space)
    assert compact["lstm_units_1"] == {"choices": [32, 64]}
    assert compact["dropout_rate"] == {"low": 0.3, "high": 0.4}
    assert compact["learning_rate"] == {"low": 1e-4, "high": 5e-4, "log": True}
    assert compact["use_second_lstm"] == {"value": False}
    untouched = set(GUIDE_SPACE) - {
        "lstm_units_1",
        "dropout_rate",
        "learning_rate",
        "use_second_lstm",
    }
    assert {k: compact[k] for k in untouched} == {k: GUIDE_SPACE[k] for k in untouched}
    assert list(space) == list(GUIDE_SPACE)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([16, 32], {"choices": [16, 32]}),  # a bare list: choose from
        (64, {"value": 64}),  # a bare scalar: fixed
        ({"value": 32}, {"value": 32}),
    ],
)
def test_shorthand_list_and_scalar(raw: Any, expected: dict[str, Any]) -> None:
    assert space_to_json(resolve_search_space({"batch_size": raw}))["batch_size"] == expected


def test_shorthand_bool_and_str_scalars_fix_the_value() -> None:
    space = resolve_search_space({"use_second_lstm": False, "optimizer_choice": "rmsprop"})
    assert space["use_second_lstm"].value is False
    assert space["optimizer_choice"].value == "rmsprop"


def test_fixed_float_value_inside_limits() -> None:
    assert resolve_search_space({"dropout_rate": 0.0})["dropout_rate"].value == 0.0
    assert resolve_search_space({"learning_rate": {"value": 1e-3}})["learning_rate"].value == 1e-3


def test_paramspec_objects_are_validated_too() -> None:
    with pytest.raises(InvalidSearchSpace, match="'choices' is empty"):
        resolve_search_space({"lstm_units_1": ParamSpec(choices=[])})


def test_round_trip_through_the_recorded_json() -> None:
    """What the study records resolves back to the same space (resumed studies)."""
    space = resolve_search_space(
        {"batch_size": [16], "use_second_lstm": False, "dropout_rate": 0.3}
    )
    again = resolve_search_space(space_to_json(space))
    assert space_to_json(again) == space_to_json(space)


# Refusals: each with a message that says what to do


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"units": [16]}, r"unknown hyperparameter 'units'; known: lstm_units_1, use_second_lstm"),
        ({"lstm_units_1": []}, r"'lstm_units_1': 'choices' is empty"),
        ({"lstm_units_1": {"choices": []}}, r"'choices' is empty"),
        ({"dropout_rate": {"low": 0.5, "high": 0.2}}, r"inverted range low=0.5 >= high=0.2"),
        ({"dropout_rate": {"low": 0.3, "high": 0.3}}, r"use \{'value': 0.3\}"),
        ({"dropout_rate": {"low": 0.0, "high": 0.5, "log": True}}, r"log range needs low > 0"),
        ({"dropout_rate": {"low": 0.2, "high": 0.95}}, r"'dropout_rate' must lie in \[0, 0.9\]"),
        ({"learning_rate": {"value": 2.0}}, r"'learning_rate' must lie in \[1e-07, 1\]"),
        ({"learning_rate": {"low": 1e-9, "high": 1e-3}}, r"must lie in"),
        ({"dropout_rate": {"low": 0.2}}, r"a range needs both 'low' and 'high'"),
        ({"dropout_rate": [0.2, 0.3]}, r"'dropout_rate' is a float range"),
        ({"dropout_rate": "high"}, r"'dropout_rate' must be a finite number, got 'high'"),
        ({"dropout_rate": True}, r"must be a finite number, got True"),
        ({"dropout_rate": float("nan")}, r"must be a finite number"),
        ({"learning_rate": {"low": "a", "high": 1e-3}}, r"expected \{'choices': \[...\]\}"),
        ({"lstm_units_1": {"choices": [16], "step": 2}}, r"'lstm_units_1': expected"),
        ({"lstm_units_1": {"low": 16, "high": 64}}, r"'lstm_units_1' is categorical"),
        ({"lstm_units_1": ["32"]}, r"'lstm_units_1' takes int values, got '32'"),
        ({"lstm_units_1": [32.0]}, r"takes int values, got 32.0"),
        ({"lstm_units_1": [True]}, r"takes int values, got True"),
        ({"use_second_lstm": [1, 0]}, r"'use_second_lstm' takes bool values, got 1"),
        ({"optimizer_choice": ["sgd"]}, r"'optimizer_choice' must be one of \['adam', 'rmsprop'\]"),
        ({"lstm_units_1": [2048]}, r"'lstm_units_1' must lie in \[1, 1024\], got 2048"),
        ({"lstm_units_2": [0]}, r"must lie in \[1, 1024\], got 0"),
        ({"batch_size": [8192]}, r"'batch_size' must lie in \[1, 4096\]"),
        ({"dense_units": [32, 32]}, r"'dense_units': 'choices' has duplicates"),
        ({"batch_size": {"choices": [16], "value": 16}}, r"give exactly one of"),
        ({"dropout_rate": {"low": 0.2, "high": 0.4, "value": 0.3}}, r"give exactly one of"),
        ({"batch_size": {}}, r"give exactly one of"),
    ],
)
def test_invalid_overrides_are_refused_with_a_helpful_message(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidSearchSpace, match=message):
        resolve_search_space(overrides)


# Sampling on a real Optuna trial


def test_suggest_params_skips_lstm_units_2_without_a_second_lstm() -> None:
    study = memory_study()
    space = resolve_search_space(None)
    seen_second = set()
    for _ in range(40):
        trial = study.ask()
        params = suggest_params(trial, space)
        seen_second.add(params["use_second_lstm"])
        if params["use_second_lstm"]:
            assert "lstm_units_2" in params and "lstm_units_2" in trial.params
        else:
            assert "lstm_units_2" not in params and "lstm_units_2" not in trial.params
        assert params == trial.params  # nothing fixed: everything was asked
        study.tell(trial, 0.5)
    assert seen_second == {True, False}  # both branches were exercised


def test_suggest_params_values_stay_inside_the_default_space() -> None:
    study = memory_study(seed=3)
    space = resolve_search_space(None)
    for _ in range(30):
        trial = study.ask()
        params = suggest_params(trial, space)
        for name in ("lstm_units_1", "dense_units", "optimizer_choice", "batch_size"):
            assert params[name] in GUIDE_SPACE[name]["choices"]
        assert 0.2 <= params["dropout_rate"] <= 0.5
        assert 1e-5 <= params["learning_rate"] <= 1e-3
        study.tell(trial, 0.5)


def test_fixed_values_are_used_but_never_asked() -> None:
    study = memory_study()
    space = resolve_search_space({"use_second_lstm": False, "batch_size": 32, "dropout_rate": 0.25})
    for _ in range(10):
        trial = study.ask()
        params = suggest_params(trial, space)
        assert params["use_second_lstm"] is False
        assert params["batch_size"] == 32 and params["dropout_rate"] == 0.25
        assert "lstm_units_2" not in params
        assert not {"use_second_lstm", "batch_size", "dropout_rate", "lstm_units_2"} & set(
            trial.params
        )
        study.tell(trial, 0.5)


narrowings = st.fixed_dictionaries(
    {},
    optional={
        "lstm_units_1": st.lists(
            st.sampled_from([16, 32, 64, 96, 128]), min_size=1, max_size=5, unique=True
        ),
        "use_second_lstm": st.sampled_from([True, False, [True, False], [True], [False]]),
        "dense_units": st.lists(st.integers(1, 1024), min_size=1, max_size=4, unique=True),
        "batch_size": st.integers(1, 4096),
        "dropout_rate": st.tuples(st.floats(0.0, 0.45), st.floats(0.01, 0.45)).map(
            lambda t: {"low": t[0], "high": t[0] + t[1]}
        ),
        "learning_rate": st.tuples(st.floats(1e-7, 1e-2), st.floats(1.5, 50.0)).map(
            lambda t: {"low": t[0], "high": min(1.0, t[0] * t[1]), "log": True}
        ),
    },
)


def _inside(value: Any, spec: dict[str, Any]) -> bool:
    if "value" in spec:
        return bool(value == spec["value"])
    if "choices" in spec:
        return value in spec["choices"]
    return bool(spec["low"] <= value <= spec["high"])


@settings(max_examples=40, deadline=None)
@given(overrides=narrowings, seed=st.integers(0, 2**16))
def test_sampled_params_always_fit_the_narrowed_space(overrides: dict[str, Any], seed: int) -> None:
    space = resolve_search_space(overrides)
    compact = space_to_json(space)
    study = memory_study(seed)
    trial = study.ask()
    params = suggest_params(trial, space)
    check_enqueued(trial.params, space)  # what was sampled is always enqueue-able
    for name, value in params.items():
        assert _inside(value, compact[name]), (name, value, compact[name])
    assert ("lstm_units_2" in params) == params["use_second_lstm"]
    assert effective_params(trial.params, compact) == params


# effective_params


def test_effective_params_adds_fixed_values_in_space_order() -> None:
    compact = space_to_json(resolve_search_space({"optimizer_choice": "adam", "batch_size": 64}))
    sampled = {
        "learning_rate": 1e-4,
        "lstm_units_1": 32,
        "use_second_lstm": True,
        "lstm_units_2": 8,
        "dense_units": 16,
        "dropout_rate": 0.3,
    }
    params = effective_params(sampled, compact)
    assert params["optimizer_choice"] == "adam" and params["batch_size"] == 64
    assert list(params) == list(GUIDE_SPACE)


def test_effective_params_drops_lstm_units_2_when_the_second_lstm_is_off() -> None:
    fixed_off = space_to_json(resolve_search_space({"use_second_lstm": False, "lstm_units_2": 16}))
    params = effective_params({"lstm_units_1": 32}, fixed_off)
    assert params == {"lstm_units_1": 32, "use_second_lstm": False}
    sampled_off = effective_params(
        {"use_second_lstm": False, "lstm_units_2": 8}, space_to_json(resolve_search_space(None))
    )
    assert sampled_off == {"use_second_lstm": False}


# check_enqueued


def test_check_enqueued_accepts_params_inside_the_space() -> None:
    space = resolve_search_space({"lstm_units_1": [32, 64], "batch_size": 16})
    check_enqueued({}, space)
    check_enqueued(
        {"lstm_units_1": 64, "learning_rate": 1e-3, "dropout_rate": 0.2, "batch_size": 16}, space
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": 1e-3}, r"enqueued param 'lr' is not in the search space; known: lstm_units_1"),
        ({"lstm_units_1": 128}, r"enqueued lstm_units_1=128 is not one of \[32, 64\]"),
        ({"learning_rate": 0.5}, r"enqueued learning_rate=0.5 is outside \[1e-05, 0.001\]"),
        ({"dropout_rate": "0.3"}, r"enqueued dropout_rate='0.3' is outside"),
        ({"batch_size": 64}, r"enqueued batch_size=64 but the study fixes 16"),
        ({"optimizer_choice": "sgd"}, r"is not one of \['adam', 'rmsprop'\]"),
    ],
)
def test_check_enqueued_errors(params: dict[str, Any], message: str) -> None:
    space = resolve_search_space({"lstm_units_1": [32, 64], "batch_size": 16})
    with pytest.raises(InvalidSearchSpace, match=message):
        check_enqueued(params, space)


def test_log_range_is_sampled_on_a_log_scale() -> None:
    """Half the draws of a log range over 1e-5..1e-3 fall below 1e-4 (a linear one: ~9%)."""
    study = memory_study(seed=11)
    space = resolve_search_space(None)
    draws = []
    for _ in range(200):
        trial = study.ask()
        draws.append(suggest_params(trial, space)["learning_rate"])
        study.tell(trial, 0.0)
    below = sum(d < 1e-4 for d in draws) / len(draws)
    assert 0.35 < below < 0.65
    assert all(math.isfinite(d) for d in draws)
