"""Server configuration: flags first, then SEQTUNE_* environment variables, then defaults.

The storage URL is server configuration only: no tool argument can point the
server at another database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from server.workers import PoolSettings, available_cpus
from tools.heartbeat import HeartbeatSettings
from tools.workspace import Workspace, default_workspace


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass
class Settings:
    workspace: Path = field(default_factory=default_workspace)
    storage_url: str = ""
    data_roots: tuple[Path, ...] = ()
    default_workers: int = 1
    trainer: str = "keras"
    trial_timeout_s: float = 3600.0
    max_trials_per_worker: int = 100
    max_worker_rss_mb: float = 3072.0
    max_consecutive_failures: int = 5
    default_wait_s: float = 45.0
    pin_cpus: bool = False
    dask_scheduler: str = ""
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build from SEQTUNE_* variables; non-None keyword overrides (CLI flags) win."""
        env = os.environ
        roots = tuple(Path(p) for p in env.get("SEQTUNE_DATA_ROOTS", "").split(os.pathsep) if p)
        values: dict[str, object] = {
            "workspace": Path(env["SEQTUNE_WORKSPACE"])
            if env.get("SEQTUNE_WORKSPACE")
            else default_workspace(),
            "storage_url": env.get("SEQTUNE_STORAGE", ""),
            "data_roots": roots,
            "default_workers": int(env.get("SEQTUNE_WORKERS", "1")),
            "trainer": env.get("SEQTUNE_TRAINER", "keras"),
            "trial_timeout_s": _env_float("SEQTUNE_TRIAL_TIMEOUT_S", 3600.0),
            "max_worker_rss_mb": _env_float("SEQTUNE_MAX_WORKER_RSS_MB", 3072.0),
            "default_wait_s": _env_float("SEQTUNE_WAIT_S", 45.0),
            "pin_cpus": env.get("SEQTUNE_PIN_CPUS", "0") in ("1", "true", "yes"),
            "dask_scheduler": env.get("SEQTUNE_DASK_SCHEDULER", ""),
            "heartbeat": HeartbeatSettings.from_env(),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def max_workers(self) -> int:
        return max(1, 4 * len(available_cpus()))

    def workspace_obj(self) -> Workspace:
        """Relative dataset paths resolve against the first data root (else the workspace)."""
        root = self.workspace.expanduser().resolve()
        extra = [p.expanduser().resolve() for p in self.data_roots if p]
        roots = (*extra, *([] if root in extra else [root]))
        return Workspace(root=root, storage_url=self.storage_url, data_roots=roots)

    def pool_settings(self) -> PoolSettings:
        return PoolSettings(
            trainer=self.trainer,
            pin_cpus=self.pin_cpus,
            max_trials_per_worker=self.max_trials_per_worker,
            max_rss_mb=self.max_worker_rss_mb,
            trial_timeout_s=self.trial_timeout_s,
        )
