"""The trial engine (`TrialRun`) on real SQLite storage with a real `WorkerPool`.

Uses the fake trainer (tools/fake_trainer.py): real worker subprocesses and
the real pipe protocol, but learning curves drawn in milliseconds instead of
training. Faults are injected per trial number with SEQTUNE_FAKE_FAULTS,
passed to the workers through `PoolSettings.env`.
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
from typing import Any

import anyio
import optuna
import psutil
import pytest
from conftest import pid_alive, worker_processes, write_small_npz

from server.workers import PoolSettings, WorkerPool
from tools.errors import InvalidSearchSpace
from tools.schemas import PrunerSpec, SamplerSpec
from tools.studies import StudyRequest, create_study
from tools.trials import (
    OWNER,
    OWNER_ATTR,
    RunEvent,
    RunPlan,
    RunState,
    TrialRun,
    fail_orphaned_trials,
)
from tools.workspace import Workspace

pytestmark = pytest.mark.anyio

FINAL = {"COMPLETE", "PRUNED", "FAIL"}
NO_PRUNING = PrunerSpec(name="none")


def make_study(ws: Workspace, name: str = "s", **kw: Any) -> None:
    if not (ws.root / "d.npz").exists():
        write_small_npz(ws.root / "d.npz")
    options: dict[str, Any] = {"max_epochs": 3, "sampler": SamplerSpec(name="random"), **kw}
    create_study(ws, StudyRequest(study_name=name, dataset="d.npz", **options))


def fake(**kw: Any) -> PoolSettings:
    return PoolSettings(trainer="fake", pin_cpus=False, **kw)


async def run_plan(
    ws: Workspace,
    plan: RunPlan,
    settings: PoolSettings | None = None,
    name: str = "s",
    events: list[RunEvent] | None = None,
) -> RunState:
    async with WorkerPool(settings or fake()) as pool:
        with anyio.fail_after(30):
            run = TrialRun(ws, name, pool, plan, (events if events is not None else []).append)
            return await run.run()


def trials(ws: Workspace, name: str = "s") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=ws.storage_url).trials


def states(ws: Workspace, name: str = "s") -> list[str]:
    return [t.state.name for t in trials(ws, name)]


# Budgets


async def test_n_trials_is_respected_and_recorded(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    events: list[RunEvent] = []
    state = await run_plan(ws, RunPlan(n_trials=4), events=events)
    assert state.finished == 4 and state.error is None
    assert states(ws) == ["COMPLETE"] * 4
    assert sorted(state.trials) == [0, 1, 2, 3]
    for frozen in trials(ws):
        info = state.trials[frozen.number]
        assert info.state == "COMPLETE" and info.value == frozen.value
        assert info.params == frozen.params
        assert frozen.user_attrs["epochs"] == 3 == info.epochs
        assert frozen.user_attrs["best_epoch"] in range(3)
        assert frozen.user_attrs["seconds"] == info.seconds > 0
        assert frozen.user_attrs["timings"]["trial_s"] > 0
        assert frozen.user_attrs[OWNER_ATTR] == OWNER
        assert sorted(frozen.intermediate_values) == list(range(3))
        assert frozen.value == max(frozen.intermediate_values.values())
    assert state.best_value == max(t.value for t in trials(ws))
    finished = [e for e in events if e.kind == "finished"]
    assert [e.finished for e in finished] == [1, 2, 3, 4]
    assert all(e.total == 4 for e in events)
    assert "trial 3 (4/4) complete after 3 epochs, value" in finished[-1].message
    assert sum(e.kind == "epoch" for e in events) == 12


async def test_two_workers_finish_every_trial_in_parallel(ws: Workspace) -> None:
    make_study(ws, max_epochs=5)
    events: list[RunEvent] = []
    settings = fake(env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.02"})
    state = await run_plan(ws, RunPlan(n_trials=6, n_workers=2), settings, events=events)
    found = states(ws)
    assert len(found) == 6 and set(found) <= FINAL
    assert sum(found.count(s) for s in FINAL) == 6 == state.finished
    assert {i.state for i in state.trials.values()} <= FINAL
    running, most = set(), 0
    for event in events:
        if event.kind == "started":
            running.add(event.trial)
        elif event.kind == "finished":
            running.discard(event.trial)
        most = max(most, len(running))
    assert most == 2  # two trials did run at the same time, never more


async def test_the_median_pruner_prunes_some_trials(ws: Workspace) -> None:
    make_study(
        ws, max_epochs=5, pruner=PrunerSpec(name="median", n_startup_trials=2, n_warmup_steps=1)
    )
    state = await run_plan(ws, RunPlan(n_trials=8))
    pruned = [t for t in trials(ws) if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, states(ws)
    assert "COMPLETE" in states(ws)
    for trial in pruned:
        assert 2 <= len(trial.intermediate_values) < 5  # stopped after warm-up, before the end
        assert state.trials[trial.number].epochs == len(trial.intermediate_values)
    assert state.error is None and state.finished == 8


async def test_timeout_stops_starting_new_trials(ws: Workspace) -> None:
    make_study(ws, max_epochs=3, pruner=NO_PRUNING)
    settings = fake(env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.03"})  # ~0.1 s per trial
    started = datetime.datetime.now()
    began = time.monotonic()
    state = await run_plan(ws, RunPlan(n_trials=None, timeout_s=1.0), settings)
    elapsed = time.monotonic() - began
    found = trials(ws)
    assert 2 <= len(found) <= 11 and state.finished == len(found)
    assert set(states(ws)) == {"COMPLETE"}
    limit = started + datetime.timedelta(seconds=1.0 + 0.5)  # + storage/clock slack
    assert all(t.datetime_start is not None and t.datetime_start < limit for t in found)
    assert elapsed < 1.0 + 2.0  # the last trial finishes, no new one starts


async def test_enqueued_params_run_first(ws: Workspace) -> None:
    make_study(ws)
    first = {"lstm_units_1": 128, "use_second_lstm": False, "learning_rate": 3e-4}
    second = {"lstm_units_1": 16, "use_second_lstm": True, "lstm_units_2": 8}
    await run_plan(ws, RunPlan(n_trials=3, enqueue=[first, second]))
    found = trials(ws)
    assert len(found) == 3
    assert {k: found[0].params[k] for k in first} == first
    assert "lstm_units_2" not in found[0].params
    assert {k: found[1].params[k] for k in second} == second


async def test_invalid_enqueued_params_are_refused_before_any_trial(ws: Workspace) -> None:
    make_study(ws, search_space={"lstm_units_1": [32, 64]})
    with pytest.raises(InvalidSearchSpace, match=r"enqueued lstm_units_1=128 is not one of"):
        await run_plan(ws, RunPlan(n_trials=2, enqueue=[{"lstm_units_1": 128}]))
    assert trials(ws) == []


async def test_same_seeded_config_in_two_workspaces_gives_identical_results(
    tmp_path: Any,
) -> None:
    outcomes = []
    for folder in ("one", "two"):
        ws = Workspace(tmp_path / folder)
        make_study(
            ws,
            max_epochs=3,
            sampler=SamplerSpec(name="tpe", n_startup_trials=2),
            pruner=PrunerSpec(name="median", n_startup_trials=2, n_warmup_steps=1),
            seed=123,
        )
        await run_plan(ws, RunPlan(n_trials=5))
        outcomes.append(
            [(t.params, t.value, t.state.name, t.intermediate_values) for t in trials(ws)]
        )
    assert len(outcomes[0]) == 5
    assert outcomes[0] == outcomes[1]
    assert len({str(params) for params, *_ in outcomes[0]}) > 1  # not a constant sampler


async def test_a_minimised_metric_keeps_the_lowest_value(ws: Workspace) -> None:
    make_study(ws, metric="val_loss", pruner=NO_PRUNING)
    state = await run_plan(ws, RunPlan(n_trials=3))
    found = trials(ws)
    values = [t.value for t in found]
    assert all(v is not None for v in values)
    assert state.best_value == min(values)  # type: ignore[type-var]
    study = optuna.load_study(study_name="s", storage=ws.storage_url)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.best_value == min(values)  # type: ignore[type-var]
    for trial in found:  # each trial keeps its best (lowest) epoch
        assert trial.value == min(trial.intermediate_values.values())


# Faults


async def test_a_crashed_worker_fails_its_trial_and_the_run_goes_on(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    state = await run_plan(ws, RunPlan(n_trials=3), fake(env={"SEQTUNE_FAKE_FAULTS": "crash:1"}))
    assert states(ws) == ["COMPLETE", "FAIL", "COMPLETE"]
    crashed = trials(ws)[1]
    assert "exited (code 3)" in crashed.user_attrs["fail_reason"]
    assert crashed.user_attrs["epochs"] == 1  # died at its second epoch
    assert state.trials[1].reason == crashed.user_attrs["fail_reason"]
    assert state.error is None and state.finished == 3


async def test_a_hung_worker_fails_with_timed_out(ws: Workspace) -> None:
    make_study(ws, max_epochs=2, pruner=NO_PRUNING)
    settings = fake(trial_timeout_s=0.5, env={"SEQTUNE_FAKE_FAULTS": "hang:0"})
    await run_plan(ws, RunPlan(n_trials=2), settings)
    assert states(ws) == ["FAIL", "COMPLETE"]
    assert trials(ws)[0].user_attrs["fail_reason"] == "trial timed out after 0.5 s"


async def test_a_raising_trainer_fails_with_the_exception_text(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    await run_plan(ws, RunPlan(n_trials=2), fake(env={"SEQTUNE_FAKE_FAULTS": "raise:0"}))
    assert states(ws) == ["FAIL", "COMPLETE"]
    failed = trials(ws)[0]
    assert failed.user_attrs["fail_reason"] == "RuntimeError: fake trainer asked to fail"


async def test_a_raising_trainer_keeps_its_traceback_on_the_trial(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    await run_plan(ws, RunPlan(n_trials=1), fake(env={"SEQTUNE_FAKE_FAULTS": "raise:0"}))
    tail = trials(ws)[0].user_attrs.get("stderr_tail", "")
    assert "Traceback" in tail and "RuntimeError: fake trainer asked to fail" in tail


async def test_a_failed_trial_is_retried_with_the_same_params(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    settings = fake(env={"SEQTUNE_FAKE_FAULTS": "crash:1"})
    await run_plan(ws, RunPlan(n_trials=3, max_retries=1), settings)
    found = trials(ws)
    assert [t.state.name for t in found] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert found[2].params == found[1].params
    assert found[2].user_attrs["retry_of"] == 1 and found[2].user_attrs["retry_count"] == 1
    assert "retry_of" not in found[0].user_attrs and "retry_of" not in found[1].user_attrs


async def test_retries_stop_after_max_retries(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    settings = fake(env={"SEQTUNE_FAKE_FAULTS": "raise:1,raise:2,raise:3"})
    plan = RunPlan(n_trials=5, max_retries=2, max_consecutive_failures=10)
    await run_plan(ws, plan, settings)
    found = trials(ws)
    assert [t.state.name for t in found] == ["COMPLETE", "FAIL", "FAIL", "FAIL", "COMPLETE"]
    assert found[1].params == found[2].params == found[3].params
    assert [t.user_attrs.get("retry_of") for t in found] == [None, None, 1, 1, None]
    assert [t.user_attrs.get("retry_count") for t in found] == [None, None, 1, 2, None]
    assert found[4].params != found[1].params  # a fresh sample after the last retry


async def test_cancelled_trials_are_not_retried(ws: Workspace) -> None:
    make_study(ws, max_epochs=200, pruner=NO_PRUNING)
    settings = fake(env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.02"})
    async with WorkerPool(settings) as pool:
        with anyio.fail_after(20), anyio.CancelScope() as scope:

            def on_event(event: RunEvent) -> None:
                if event.kind == "epoch" and event.message.startswith("trial 0 epoch 3"):
                    scope.cancel()

            await TrialRun(ws, "s", pool, RunPlan(n_trials=5, max_retries=3), on_event).run()
    assert states(ws) == ["FAIL"]  # nothing WAITING behind the cancelled trial
    assert trials(ws)[0].user_attrs["fail_reason"] == "cancelled"


async def test_consecutive_failures_stop_the_run(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    faults = ",".join(f"raise:{n}" for n in range(20))
    settings = fake(env={"SEQTUNE_FAKE_FAULTS": faults})
    state = await run_plan(ws, RunPlan(n_trials=20, max_consecutive_failures=3), settings)
    assert states(ws) == ["FAIL"] * 3
    assert state.error is not None
    assert state.error.startswith("run stopped after 3 consecutive failed trials; last reason:")
    assert "fake trainer asked to fail" in state.error


async def test_a_success_resets_the_failure_count(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    settings = fake(env={"SEQTUNE_FAKE_FAULTS": "raise:0,raise:1,raise:3,raise:4"})
    state = await run_plan(ws, RunPlan(n_trials=6, max_consecutive_failures=3), settings)
    assert states(ws) == ["FAIL", "FAIL", "COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert state.error is None


# Cancellation and orphans


async def test_cancelling_mid_run_leaves_no_running_trial_and_no_worker(ws: Workspace) -> None:
    make_study(ws, max_epochs=200, pruner=NO_PRUNING)
    settings = fake(env={"SEQTUNE_FAKE_EPOCH_SECONDS": "0.02"})
    async with WorkerPool(settings) as pool:
        epochs = 0
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:

                def on_event(event: RunEvent) -> None:
                    nonlocal epochs
                    epochs += event.kind == "epoch"
                    if epochs == 6:  # both workers are busy mid-trial
                        tg.cancel_scope.cancel()

                run = TrialRun(ws, "s", pool, RunPlan(n_trials=50, n_workers=2), on_event)
                tg.start_soon(run.run)
                with anyio.fail_after(10):
                    while len(pool.live_pids) < 2:
                        await anyio.sleep(0.01)
                pids = pool.live_pids
        assert tg.cancel_scope.cancel_called
        assert len(pids) == 2
        assert pool.live_pids == []
        assert not any(pid_alive(pid) for pid in pids)
        assert worker_processes() == []
    found = trials(ws)
    assert len(found) == 2
    assert all(t.state == optuna.trial.TrialState.FAIL for t in found)
    assert all(t.user_attrs["fail_reason"] == "cancelled" for t in found)
    assert {i.state for i in run.state.trials.values()} == {"FAIL"}
    assert run.state.consecutive_failures == 0  # cancellation is not a failure


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_orphaned_trials_of_dead_owners_fail_at_the_next_run(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        study = optuna.load_study(study_name="s", storage=ws.storage_url)
        owners = [
            f"{host}:{dead_pid()}",  # 0: died: orphan
            f"{host}:{sleeper.pid}",  # 1: alive: another server's trial
            f"elsewhere.example:{dead_pid()}",  # 2: another host: not ours to judge
            None,  # 3: not a seqtune trial
            OWNER,  # 4: this very process
        ]
        for owner in owners:
            trial = study.ask()
            if owner is not None:
                trial.set_user_attr(OWNER_ATTR, owner)
        await run_plan(ws, RunPlan(n_trials=1))
        found = trials(ws)
        assert [t.state.name for t in found] == [
            "FAIL",
            "RUNNING",
            "RUNNING",
            "RUNNING",
            "RUNNING",
            "COMPLETE",
        ]
        reason = found[0].user_attrs["fail_reason"]
        assert (
            reason
            == f"server process {owners[0].rpartition(':')[2]} died while this trial was running"
        )
        # idempotent: nothing left to fail
        assert fail_orphaned_trials(optuna.load_study(study_name="s", storage=ws.storage_url)) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    # once the sleeper is gone, its trial is an orphan too
    orphans = fail_orphaned_trials(optuna.load_study(study_name="s", storage=ws.storage_url))
    assert orphans == [1]


async def test_a_resumed_study_does_not_replay_its_first_params(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    await run_plan(ws, RunPlan(n_trials=2))
    await run_plan(ws, RunPlan(n_trials=2))
    found = trials(ws)
    assert len(found) == 4 and set(states(ws)) == {"COMPLETE"}
    assert [t.params for t in found[:2]] != [t.params for t in found[2:]]


def test_owner_names_this_host_process_and_its_start() -> None:
    host, pid, started = OWNER.split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert abs(int(started) - psutil.Process().create_time() * 100) <= 1


async def test_a_reused_pid_does_not_keep_an_orphan_alive(ws: Workspace) -> None:
    make_study(ws, pruner=NO_PRUNING)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        study = optuna.load_study(study_name="s", storage=ws.storage_url)
        trial = study.ask()
        # Same pid, but the recorded owner started at another time: a different process.
        trial.set_user_attr(OWNER_ATTR, f"{socket.gethostname()}:{sleeper.pid}:12345")
        assert fail_orphaned_trials(optuna.load_study(study_name="s", storage=ws.storage_url)) == [
            0
        ]
    finally:
        sleeper.kill()
        sleeper.wait()
