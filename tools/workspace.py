"""Where studies live: the storage URL, the artifacts folder, the readable data folders."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from tools.errors import InvalidConfig, StorageUnavailable

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_workspace() -> Path:
    """$SEQTUNE_WORKSPACE, else $XDG_DATA_HOME/seqtune, else ~/.local/share/seqtune."""
    if env := os.environ.get("SEQTUNE_WORKSPACE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "seqtune"


def validate_study_name(name: str) -> str:
    if not _STUDY_NAME.match(name) or ".." in name:
        raise InvalidConfig(
            f"invalid study name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (it names a folder)"
        )
    return name


@dataclass
class Workspace:
    """A workspace folder holding the SQLite file (by default) and per-study artifacts."""

    root: Path
    storage_url: str = ""
    data_roots: tuple[Path, ...] = ()
    _storage: Any = field(default=None, init=False, repr=False)
    _rdb: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = self.root.expanduser().resolve()
        if not self.storage_url:
            self.storage_url = f"sqlite:///{self.root / 'seqtune.db'}"
        if not self.data_roots:
            self.data_roots = (self.root,)

    @property
    def is_sqlite(self) -> bool:
        return self.storage_url.startswith("sqlite")

    @property
    def storage_label(self) -> str:
        """The storage URL with its password masked: what results and logs show."""
        return redact_url(self.storage_url)

    def close(self) -> None:
        """Close the database connections (a server's or a test's last step)."""
        if self._rdb is not None:
            self._rdb.engine.dispose()
        self._rdb = self._storage = None

    def storage(self) -> optuna.storages.BaseStorage:
        """The workspace's storage behind Optuna's own trial cache, as for an RDB URL:
        finished trials are read from the database once, then served from memory
        (best_params on 1,000 trials: ~600 ms -> ~4 ms)."""
        if self._storage is None:
            self._storage = optuna.storages.get_storage(self.rdb())
        storage: optuna.storages.BaseStorage = self._storage
        return storage

    def rdb(self) -> optuna.storages.RDBStorage:
        """The database itself: one engine per workspace (engine and schema checks cost)."""
        if self._rdb is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._rdb = open_storage(self.storage_url)
        rdb: optuna.storages.RDBStorage = self._rdb
        return rdb

    def study_dir(self, study_name: str) -> Path:
        return self.root / "studies" / validate_study_name(study_name)

    def data_dir(self, study_name: str) -> Path:
        return self.study_dir(study_name) / "data"


def redact_url(url: str) -> str:
    try:
        return str(sqlalchemy.engine.make_url(url).render_as_string(hide_password=True))
    except sqlalchemy.exc.ArgumentError:
        return url.split("@")[-1]


def open_storage(url: str, **options: Any) -> optuna.storages.RDBStorage:
    """An RDB storage for `url`; `options` go to `RDBStorage` (e.g. heartbeats)."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Readers (other processes, the CLI) wait instead of failing on a busy file.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **options)
    except ImportError:
        raise StorageUnavailable(
            f"no database driver for {redact_url(url)}: for PostgreSQL install "
            "pip install 'seqtune[cluster]' (psycopg)"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageUnavailable(
            f"cannot open the storage {redact_url(url)}: {detail}; check --storage / "
            "SEQTUNE_STORAGE (user, password, host, database) and that the server runs"
        ) from None
    if url.startswith("sqlite"):
        _enable_wal(storage)
    return storage


def _enable_wal(storage: optuna.storages.RDBStorage) -> None:
    """WAL lets readers run beside the writer; it persists in the file."""
    with storage.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
