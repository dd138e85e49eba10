"""One drawing at a time, with optuna's and matplotlib's chatter kept off stderr.

pyplot's current figure, rcParams and the warnings filter are all
process-wide, and the server draws from worker threads: a lock keeps two
drawings from mixing. Optuna warns on every call that its plots are
experimental, and matplotlib or PED-ANOVA warn about tiny studies (a param
with one value, a regime with one trial); those are expected early in a
study, so they are logged at debug level instead of printed.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from optuna.exceptions import ExperimentalWarning

log = logging.getLogger(__name__)
_LOCK = threading.RLock()


@contextmanager
def drawing_session() -> Iterator[None]:
    with _LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        warnings.simplefilter("always", ExperimentalWarning)
        try:
            yield
        finally:
            for warning in caught:
                log.debug("while drawing: %s", warning.message)
