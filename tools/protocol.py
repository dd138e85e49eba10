"""Messages between the server (single storage writer) and a worker process.

One JSON object per line. The worker writes to its protocol stream (its
original stdout); the server answers on the worker's stdin. Per trial:

    server -> worker   {"type": "trial", "job": TrialJob}
    worker -> server   {"type": "epoch", ...EpochReport}      (once per epoch)
    server -> worker   {"type": "decision", "prune": bool, "stop": bool}
    worker -> server   {"type": "result", ...TrialResult}

The worker announces itself with {"type": "ready", ...} after importing its
trainer, and exits on {"type": "shutdown"} or when its stdin closes.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrialJob(Message):
    """Everything a worker needs to train one configuration."""

    study_name: str
    trial_number: int
    params: dict[str, Any]
    data_dir: str = Field(description="Folder with train.npz, val.npz, prepared.json.")
    metric: str
    direction: Literal["maximize", "minimize"]
    max_epochs: int
    patience: int
    seed: int


class EpochReport(Message):
    epoch: int
    value: float = Field(description="The study metric at this epoch.")
    metrics: dict[str, float] = Field(default_factory=dict)


class Decision(Message):
    prune: bool = False
    stop: bool = False


class TrialResult(Message):
    state: Literal["complete", "pruned", "fail"]
    value: float | None = None
    epochs: int = 0
    best_epoch: int | None = None
    reason: str | None = None
    stderr_tail: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    rss_mb: float | None = None


class Ready(Message):
    pid: int
    trainer: str
    import_seconds: float
    threads: int


def encode(kind: str, payload: BaseModel | dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"type": kind}
    if isinstance(payload, BaseModel):
        body.update(payload.model_dump(mode="json"))
    elif payload is not None:
        body.update(payload)
    return (json.dumps(body, allow_nan=True) + "\n").encode()


def decode(line: bytes | str) -> tuple[str, dict[str, Any]]:
    body = json.loads(line)
    if not isinstance(body, dict) or "type" not in body:
        raise ValueError(f"not a protocol message: {line!r:.200}")
    kind = body.pop("type")
    return str(kind), body


# Final training and inference tasks (see tools.final_training).
PARTIAL_MODEL = "model.partial.keras"
PROBS_FILE = "probs.partial.npz"


class RetrainJob(Message):
    params: dict[str, Any]
    data_dir: str
    out_dir: str
    monitor: str = "val_loss"
    direction: str = "minimize"
    max_epochs: int = 150
    patience: int = 12
    reduce_lr_patience: int = 6
    reduce_lr_factor: float = 0.5
    min_lr: float = 1e-6
    seed: int = 42


class PredictJob(Message):
    model_path: str
    input_path: str
    output_path: str
