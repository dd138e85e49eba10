"""A fast stand-in for the Keras objective, for tests of the tool logic.

It runs in a real worker process and speaks the real protocol, but instead
of training it draws a deterministic learning curve from the params and the
trial seed (no TensorFlow, milliseconds per epoch). Tests that claim real
training use the `keras` trainer instead.

Faults are injected per trial number through `SEQTUNE_FAKE_FAULTS`, e.g.
"crash:2,hang:4,raise:5,leak:6": trial 2's process exits hard at its second
epoch, trial 4 hangs, trial 5 raises an exception, trial 6 grabs 32 MB more
memory every epoch.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable

from tools.protocol import Decision, EpochReport, TrialJob, TrialResult

EPOCH_SECONDS = float(os.environ.get("SEQTUNE_FAKE_EPOCH_SECONDS", "0.01"))


def curve_ceiling(params: dict[str, object]) -> float:
    """A smooth landscape: best near learning_rate 3e-4 and more units."""
    lr = float(params.get("learning_rate", 1e-4))  # type: ignore[arg-type]
    units = float(params.get("lstm_units_1", 32))  # type: ignore[arg-type]
    lr_term = math.exp(-((math.log10(lr) + 3.5) ** 2))
    return 0.55 + 0.35 * lr_term + 0.05 * min(units, 128) / 128


def run_trial(job: TrialJob, ask_server: Callable[[EpochReport], Decision]) -> TrialResult:
    rng = random.Random(job.seed)
    ceiling = curve_ceiling(job.params)
    curve: list[float] = []
    for epoch in range(job.max_epochs):
        _apply_hooks(job, epoch)
        time.sleep(EPOCH_SECONDS)
        accuracy = ceiling * (1 - math.exp(-(epoch + 1) / 3)) + rng.uniform(-0.01, 0.01)
        value = accuracy if job.direction == "maximize" else 1.0 - accuracy
        curve.append(value)
        decision = ask_server(EpochReport(epoch=epoch, value=value, metrics={job.metric: value}))
        if decision.stop:
            return TrialResult(state="fail", epochs=epoch + 1, reason="cancelled")
        if decision.prune:
            return TrialResult(state="pruned", epochs=epoch + 1)
    pick = max if job.direction == "maximize" else min
    best = pick(curve)
    return TrialResult(
        state="complete", value=best, epochs=len(curve), best_epoch=curve.index(best)
    )


def _faults() -> dict[int, str]:
    spec = os.environ.get("SEQTUNE_FAKE_FAULTS", "")
    pairs = (item.split(":") for item in spec.split(",") if ":" in item)
    return {int(number): kind for kind, number in pairs}


def _apply_hooks(job: TrialJob, epoch: int) -> None:
    fault = _faults().get(job.trial_number)
    if fault == "crash" and epoch == 1:
        os._exit(3)
    if fault == "hang":
        time.sleep(3600)
    if fault == "raise":
        raise RuntimeError("fake trainer asked to fail")
    if fault == "leak":
        _leaked.append(b"\x01" * (32 * 2**20))


_leaked: list[bytes] = []
