"""One exception tree for everything seqtune expects to go wrong.

Each message is written for the reader who must act on it (often an AI
assistant): say what was wrong and what to do instead. The MCP layer maps
every `SeqtuneError` to a tool error with this message, unchanged.
"""

from __future__ import annotations


class SeqtuneError(Exception):
    """Base class of all expected seqtune failures."""


class InvalidDataset(SeqtuneError):
    """The dataset cannot be read, or fails validation before training."""


class DatasetChanged(InvalidDataset):
    """The dataset file changed since the study recorded its sha256."""


class PathNotAllowed(InvalidDataset):
    """A path resolves outside the folders the server may read."""


class InvalidSearchSpace(SeqtuneError):
    """Unknown hyperparameter, empty or inverted range, bad choice list."""


class InvalidConfig(SeqtuneError):
    """An argument outside what seqtune supports (sampler, pruner, split, ...)."""


class StorageUnavailable(SeqtuneError):
    """The configured storage cannot be opened (driver missing, server down, bad URL)."""


class StudyNotFound(SeqtuneError):
    """No study of that name in the storage."""


class StudyExists(SeqtuneError):
    """A study of that name exists with a different configuration."""


class NotASeqtuneStudy(SeqtuneError):
    """The study exists but was not created by seqtune (no recorded config)."""


class StudyBusy(SeqtuneError):
    """A run is already active on this study in this server."""


class RunNotFound(SeqtuneError):
    """No run with that id in this server."""


class WorkerCrashed(SeqtuneError):
    """A worker process died or hung; the trial it ran is marked FAIL."""


class TrainingFailed(SeqtuneError):
    """Final training or prediction raised inside the worker (message says why)."""


class TooManyFailures(SeqtuneError):
    """A run stopped after too many consecutive failed trials."""


class NothingToShow(SeqtuneError):
    """A result needs trials (or a retrain) that do not exist yet."""
