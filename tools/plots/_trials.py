"""Which trials and params a plot can use: pure functions of a study's trial list."""

from __future__ import annotations

import math
from collections.abc import Sequence

from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

FrozenTrials = Sequence[FrozenTrial]

# States optuna's intermediate-values plot draws: running trials show live curves.
CURVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
# A 3x3 contour grid stays legible and quick on large studies.
MAX_CONTOUR_PARAMS = 3


def complete(trials: FrozenTrials) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def finite_complete(trials: FrozenTrials) -> list[FrozenTrial]:
    return [t for t in complete(trials) if t.value is not None and math.isfinite(t.value)]


def with_curves(trials: FrozenTrials) -> list[FrozenTrial]:
    return [t for t in trials if t.state in CURVE_STATES and t.intermediate_values]


def varying_params(trials: FrozenTrials) -> list[str]:
    """Params taking at least two distinct values, in the order trials first asked them."""
    seen: dict[str, set[str]] = {}
    for trial in trials:
        for name, value in trial.params.items():
            seen.setdefault(name, set()).add(repr(value))
    return [name for name, values in seen.items() if len(values) >= 2]


def contour_params(trials: FrozenTrials) -> list[str]:
    """Up to MAX_CONTOUR_PARAMS varying params: numeric ones first, then the most often set.

    Numeric params make smooth contours; a param set in every trial (not
    conditional) leaves no trial out of its panels.
    """
    names = varying_params(trials)
    order = {name: i for i, name in enumerate(names)}
    present = {name: sum(name in t.params for t in trials) for name in names}
    categorical = {
        name
        for trial in trials
        for name, dist in trial.distributions.items()
        if isinstance(dist, CategoricalDistribution)
    }
    ranked = sorted(names, key=lambda n: (n in categorical, -present[n], order[n]))
    return ranked[:MAX_CONTOUR_PARAMS]


def describe_others(trials: FrozenTrials) -> str:
    """E.g. " (2 pruned, 1 failed, 1 running)" for the trials that are not COMPLETE."""
    words = {
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }
    counts = {word: sum(t.state == state for t in trials) for state, word in words.items()}
    parts = [f"{n} {word}" for word, n in counts.items() if n]
    return f" ({', '.join(parts)})" if parts else ""


def is_running(trials: FrozenTrials) -> bool:
    return any(t.state == TrialState.RUNNING for t in trials)
