"""The BiLSTM search space: defaults from the guide, narrowing, and sampling.

Sampling is define-by-run on an Optuna trial and needs no TensorFlow, so the
server process (the single storage writer) asks for the params and ships them
to a worker.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from pydantic import BaseModel, ConfigDict, Field

from tools.errors import InvalidSearchSpace

Choice = int | float | str | bool


class ParamSpec(BaseModel):
    """One hyperparameter: a choice list, a numeric range, or a fixed value."""

    model_config = ConfigDict(extra="forbid")

    choices: list[Choice] | None = Field(None, description="Allowed values (categorical).")
    low: float | None = Field(None, description="Lower bound of a numeric range.")
    high: float | None = Field(None, description="Upper bound of a numeric range.")
    log: bool = Field(False, description="Sample the range on a log scale.")
    value: Choice | None = Field(None, description="Fix the hyperparameter to this value.")


# The guide's space. Order matters: it is the order params are asked.
DEFAULT_SPACE: dict[str, ParamSpec] = {
    "lstm_units_1": ParamSpec(choices=[16, 32, 64, 96, 128]),
    "use_second_lstm": ParamSpec(choices=[True, False]),
    "lstm_units_2": ParamSpec(choices=[8, 16, 24, 32, 48]),
    "dense_units": ParamSpec(choices=[16, 32, 48, 64]),
    "dropout_rate": ParamSpec(low=0.2, high=0.5),
    "learning_rate": ParamSpec(low=1e-5, high=1e-3, log=True),
    "optimizer_choice": ParamSpec(choices=["adam", "rmsprop"]),
    "batch_size": ParamSpec(choices=[16, 32, 64]),
}

# What each known hyperparameter may take at all (narrowing stays inside these).
_FLOAT_LIMITS = {"dropout_rate": (0.0, 0.9), "learning_rate": (1e-7, 1.0)}
_CHOICE_TYPES: dict[str, type] = {
    "lstm_units_1": int,
    "lstm_units_2": int,
    "dense_units": int,
    "batch_size": int,
    "use_second_lstm": bool,
    "optimizer_choice": str,
}
_OPTIMIZERS = ("adam", "rmsprop")
_MAX_UNITS = 1024
_MAX_BATCH = 4096


def resolve_search_space(overrides: dict[str, Any] | None) -> dict[str, ParamSpec]:
    """Merge user overrides into the default space, validating each one.

    An override is a `ParamSpec` (or its dict) for a known name; it replaces
    that name's default entirely.
    """
    space = dict(DEFAULT_SPACE)
    for name, raw in (overrides or {}).items():
        if name not in DEFAULT_SPACE:
            known = ", ".join(DEFAULT_SPACE)
            raise InvalidSearchSpace(f"unknown hyperparameter '{name}'; known: {known}")
        spec = raw if isinstance(raw, ParamSpec) else _parse_spec(name, raw)
        space[name] = _validated(name, spec)
    return space


def _parse_spec(name: str, raw: Any) -> ParamSpec:
    if not isinstance(raw, dict):
        # A bare value or list is the common shorthand for "fix" or "choose from".
        raw = {"choices": raw} if isinstance(raw, list) else {"value": raw}
    try:
        return ParamSpec.model_validate(raw)
    except ValueError as exc:
        raise InvalidSearchSpace(
            f"'{name}': expected {{'choices': [...]}}, {{'low': a, 'high': b, 'log': bool}} "
            f"or {{'value': v}}; got {raw!r}"
        ) from exc


def _validated(name: str, spec: ParamSpec) -> ParamSpec:
    forms = sum(x is not None for x in (spec.choices, spec.value)) + (
        spec.low is not None or spec.high is not None
    )
    if forms != 1:
        raise InvalidSearchSpace(
            f"'{name}': give exactly one of 'choices', 'low'+'high' or 'value'"
        )
    if name in _FLOAT_LIMITS:
        return _validated_float(name, spec)
    if spec.low is not None or spec.high is not None:
        raise InvalidSearchSpace(f"'{name}' is categorical: give 'choices' or 'value', not a range")
    values = spec.choices if spec.choices is not None else [spec.value]
    if not values:
        raise InvalidSearchSpace(f"'{name}': 'choices' is empty")
    for value in values:
        _check_choice(name, value)
    if spec.choices is not None and len(set(map(repr, spec.choices))) != len(spec.choices):
        raise InvalidSearchSpace(f"'{name}': 'choices' has duplicates: {spec.choices}")
    return spec


def _validated_float(name: str, spec: ParamSpec) -> ParamSpec:
    lo_lim, hi_lim = _FLOAT_LIMITS[name]
    if spec.choices is not None:
        raise InvalidSearchSpace(f"'{name}' is a float range: give 'low'+'high' or 'value'")
    if spec.value is not None:
        _check_float(name, spec.value, lo_lim, hi_lim)
        return spec
    if spec.low is None or spec.high is None:
        raise InvalidSearchSpace(f"'{name}': a range needs both 'low' and 'high'")
    _check_float(name, spec.low, lo_lim, hi_lim)
    _check_float(name, spec.high, lo_lim, hi_lim)
    if spec.low >= spec.high:
        raise InvalidSearchSpace(
            f"'{name}': empty or inverted range low={spec.low:g} >= high={spec.high:g}; "
            f"to fix the value use {{'value': {spec.low:g}}}"
        )
    if spec.log and spec.low <= 0:
        raise InvalidSearchSpace(f"'{name}': a log range needs low > 0")
    return spec


def _check_float(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSearchSpace(f"'{name}' must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidSearchSpace(f"'{name}' must lie in [{lo:g}, {hi:g}], got {value:g}")


def _check_choice(name: str, value: Any) -> None:
    kind = _CHOICE_TYPES[name]
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise InvalidSearchSpace(f"'{name}' takes {kind.__name__} values, got {value!r}")
    if name == "optimizer_choice" and value not in _OPTIMIZERS:
        raise InvalidSearchSpace(f"'optimizer_choice' must be one of {list(_OPTIMIZERS)}")
    if kind is int:
        limit = _MAX_BATCH if name == "batch_size" else _MAX_UNITS
        if not 1 <= value <= limit:
            raise InvalidSearchSpace(f"'{name}' must lie in [1, {limit}], got {value}")


def suggest_params(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Ask the trial for every hyperparameter; `lstm_units_2` only with a second LSTM."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if name == "lstm_units_2" and not params["use_second_lstm"]:
            continue
        if spec.value is not None:
            params[name] = spec.value
        elif spec.choices is not None:
            params[name] = trial.suggest_categorical(name, spec.choices)
        else:
            assert spec.low is not None and spec.high is not None
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
    return params


def space_to_json(space: dict[str, ParamSpec]) -> dict[str, dict[str, Any]]:
    """Compact JSON form, as recorded in the study."""
    return {name: spec.model_dump(exclude_defaults=True) for name, spec in space.items()}


def effective_params(sampled: dict[str, Any], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A trial's sampled params plus the values the study fixed (what the model used)."""
    params = dict(sampled)
    for name, spec in space.items():
        if "value" in spec and name not in params:
            params[name] = spec["value"]
    if not params.get("use_second_lstm", True):
        params.pop("lstm_units_2", None)
    return {name: params[name] for name in space if name in params}


def check_enqueued(params: dict[str, Any], space: dict[str, ParamSpec]) -> None:
    """Enqueued params must name known hyperparameters and fit the study's space."""
    for name, value in params.items():
        if name not in space:
            raise InvalidSearchSpace(
                f"enqueued param '{name}' is not in the search space; known: {', '.join(space)}"
            )
        spec = space[name]
        if spec.choices is not None and value not in spec.choices:
            raise InvalidSearchSpace(f"enqueued {name}={value!r} is not one of {spec.choices}")
        if spec.low is not None and spec.high is not None:
            inside = isinstance(value, int | float) and spec.low <= value <= spec.high
            if not inside:
                raise InvalidSearchSpace(
                    f"enqueued {name}={value!r} is outside [{spec.low:g}, {spec.high:g}]"
                )
        if spec.value is not None and value != spec.value:
            raise InvalidSearchSpace(
                f"enqueued {name}={value!r} but the study fixes {spec.value!r}"
            )
