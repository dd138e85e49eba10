"""Read-only views of studies: the best trial, trial listings, the study list."""

from __future__ import annotations

from typing import Any, Literal

import optuna
from pydantic import BaseModel, Field

from tools.search_space import effective_params
from tools.studies import (
    CONFIG_ATTR,
    best_trial_or_none,
    count_states,
    load_study,
)
from tools.trials import TrialInfo
from tools.workspace import Workspace

TrialStateName = Literal["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]


class BestParams(BaseModel):
    study_name: str
    metric: str
    direction: str
    best_trial: int | None = Field(description="None until a trial completes.")
    best_value: float | None
    params: dict[str, Any] = Field(description="Every hyperparameter the best model used.")
    user_attrs: dict[str, Any] = Field(default_factory=dict)
    counts: dict[str, int]
    n_trials: int


class TrialList(BaseModel):
    study_name: str
    total: int = Field(description="Trials matching the state filter, before the limit.")
    trials: list[TrialInfo]


class StudyBrief(BaseModel):
    study_name: str
    metric: str | None
    direction: str
    dataset: str | None
    n_trials: int
    best_value: float | None


class StudyList(BaseModel):
    storage: str
    studies: list[StudyBrief]


def best_params(ws: Workspace, name: str) -> BestParams:
    study, config = load_study(ws, name)
    trials = study.get_trials(deepcopy=False)
    best = best_trial_or_none(study)
    return BestParams(
        study_name=name,
        metric=config.metric,
        direction=config.direction,
        best_trial=best.number if best else None,
        best_value=best.value if best else None,
        params=effective_params(best.params, config.search_space) if best else {},
        user_attrs=dict(best.user_attrs) if best else {},
        counts=count_states(trials),
        n_trials=len(trials),
    )


def trial_info(trial: optuna.trial.FrozenTrial, space: dict[str, dict[str, Any]]) -> TrialInfo:
    seconds = trial.user_attrs.get("seconds")
    if seconds is None and trial.datetime_start and trial.datetime_complete:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return TrialInfo(
        number=trial.number,
        state=trial.state.name,
        value=trial.value,
        params=effective_params(trial.params, space),
        epochs=int(trial.user_attrs.get("epochs", len(trial.intermediate_values))),
        seconds=seconds,
        reason=trial.user_attrs.get("fail_reason"),
    )


def list_trials(
    ws: Workspace,
    name: str,
    states: list[TrialStateName] | None = None,
    limit: int = 50,
    order: Literal["number", "best"] = "number",
) -> TrialList:
    study, config = load_study(ws, name)
    wanted = tuple(optuna.trial.TrialState[s] for s in states) if states else None
    trials = study.get_trials(deepcopy=False, states=wanted)
    if order == "best":
        sign = -1.0 if config.direction == "maximize" else 1.0
        # COMPLETE first: a pruned trial's value is only its last intermediate value.
        complete = optuna.trial.TrialState.COMPLETE
        trials = sorted(
            trials,
            key=lambda t: (t.state != complete, t.value is None, sign * (t.value or 0.0), t.number),
        )
    else:
        trials = sorted(trials, key=lambda t: t.number, reverse=True)
    picked = trials[:limit]
    return TrialList(
        study_name=name,
        total=len(trials),
        trials=[trial_info(t, config.search_space) for t in picked],
    )


def list_studies(ws: Workspace) -> StudyList:
    briefs = []
    for summary in optuna.get_all_study_summaries(ws.storage(), include_best_trial=True):
        config = summary.user_attrs.get(CONFIG_ATTR, {})
        best = summary.best_trial
        briefs.append(
            StudyBrief(
                study_name=summary.study_name,
                metric=config.get("metric"),
                direction=summary.direction.name.lower(),
                dataset=config.get("dataset"),
                n_trials=summary.n_trials,
                best_value=best.value if best else None,
            )
        )
    return StudyList(storage=ws.storage_label, studies=sorted(briefs, key=lambda b: b.study_name))
