"""Why a plot cannot be drawn yet, as a sentence the caller can act on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from tools.plots._kinds import check_kind
from tools.plots._training import training_problem
from tools.plots._trials import (
    FrozenTrials,
    complete,
    describe_others,
    finite_complete,
    is_running,
    varying_params,
    with_curves,
)


def plot_problem(
    study: optuna.Study, kind: str, history: Mapping[str, Any] | None = None
) -> str | None:
    """None when `kind` can be drawn now; otherwise what is missing and what to do.

    Raises InvalidConfig for an unknown kind. Reads the trials once and draws nothing.
    """
    check_kind(kind)
    if kind == "training_history":
        return training_problem(history)
    return _CHECKS[kind](kind, study.get_trials(deepcopy=False))


def _advice(trials: FrozenTrials) -> str:
    if not trials:
        return "run trials first"
    if is_running(trials):
        return "wait for the running trials to finish, or run more trials"
    return "run more trials"


def _needs_complete(kind: str, trials: FrozenTrials, needed: int) -> str | None:
    done = complete(trials)
    if len(done) >= needed:
        return None
    plural = "s" if needed > 1 else ""
    return (
        f"{kind} needs at least {needed} complete trial{plural}; the study has {len(done)}"
        f"{describe_others(trials)}: {_advice(trials)}"
    )


def _needs_varying(kind: str, trials: FrozenTrials, needed: int) -> str | None:
    varying = varying_params(complete(trials))
    if len(varying) >= needed:
        return None
    which = ", ".join(varying) if varying else "none"
    return (
        f"{kind} needs at least {needed} hyperparameters that vary across complete trials "
        f"(varying so far: {which}): {_advice(trials)}, or widen the search space"
    )


def _params_problem(kind: str, trials: FrozenTrials) -> str | None:
    problem = _needs_complete(kind, trials, 1)
    if problem is None and not any(t.params for t in complete(trials)):
        return (
            f"{kind} needs sampled hyperparameters, but the search space fixes every value: "
            "widen the search space"
        )
    return problem


def _importances_problem(kind: str, trials: FrozenTrials) -> str | None:
    problem = _needs_complete(kind, trials, 2) or _needs_varying(kind, trials, 2)
    if problem:
        return problem
    values = {t.value for t in finite_complete(trials)}
    if len(values) < 2:
        return (
            f"{kind} needs complete trials with different finite values; all complete trials "
            f"scored {', '.join(map(str, values)) or 'a non-finite value'}: {_advice(trials)}"
        )
    return None


def _contour_problem(kind: str, trials: FrozenTrials) -> str | None:
    return _needs_complete(kind, trials, 2) or _needs_varying(kind, trials, 2)


def _optimization_history_problem(kind: str, trials: FrozenTrials) -> str | None:
    return _needs_complete(kind, trials, 1)


def _curves_problem(kind: str, trials: FrozenTrials) -> str | None:
    if with_curves(trials):
        return None
    return (
        f"{kind} needs at least 1 trial that reported per-epoch values; the study has "
        f"{len(trials)} trials{describe_others(trials)} and none reported yet: {_advice(trials)}"
    )


def _timeline_problem(kind: str, trials: FrozenTrials) -> str | None:
    return (
        None if trials else f"{kind} needs at least 1 trial; the study has none: run trials first"
    )


_CHECKS: dict[str, Callable[[str, FrozenTrials], str | None]] = {
    "optimization_history": _optimization_history_problem,
    "param_importances": _importances_problem,
    "parallel_coordinate": _params_problem,
    "intermediate_values": _curves_problem,
    "slice": _params_problem,
    "contour": _contour_problem,
    "timeline": _timeline_problem,
}
