"""Importances computed once, handed to optuna's plotting code for both drawings."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.importance import BaseImportanceEvaluator
from optuna.trial import FrozenTrial


class KnownImportances(BaseImportanceEvaluator):
    """An evaluator that returns precomputed importances instead of recomputing them."""

    def __init__(self, importances: dict[str, float]) -> None:
        self._importances = dict(importances)

    def evaluate(
        self,
        study: optuna.Study,
        params: list[str] | None = None,
        *,
        target: Callable[[FrozenTrial], float] | None = None,
    ) -> dict[str, float]:
        return dict(self._importances)
