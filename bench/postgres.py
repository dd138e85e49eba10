"""A throwaway PostgreSQL database for the scale-out tests and benchmarks.

The server comes from SEQTUNE_TEST_POSTGRES_URL, else `.ci/postgres.sh`
starts one (it installs Debian's postgresql when missing).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy

from bench.common import REPO


def server_url(start: bool = True) -> str:
    """The PostgreSQL server to use; '' when none is configured and `start` is off."""
    url = os.environ.get("SEQTUNE_TEST_POSTGRES_URL", "")
    if url or not start:
        return url
    done = subprocess.run(
        [str(REPO / ".ci" / "postgres.sh")], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def fresh_database(server: str, prefix: str = "seqtune") -> Iterator[str]:
    """Create an empty database on `server`; yield its URL; drop it (and its sessions) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sqlalchemy.engine.make_url(server).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
