"""The data pipeline: load a dataset, check it, split/scale/rebalance it, store the splits.

No TensorFlow here: this runs in the server process. Modules:
`files` (where datasets may come from), `npz` / `csv_long` (file formats),
`loading`, `validation`, `summary`, `preparation`, `storage`.
"""

from tools.data.files import resolve_dataset_path
from tools.data.loading import BUILTIN_DATASETS, BUILTIN_PREFIX, RawDataset, load_dataset
from tools.data.preparation import PreparedData, prepare_dataset
from tools.data.storage import (
    TrainingArrays,
    load_prepared_meta,
    load_test_arrays,
    load_training_arrays,
    save_prepared,
)
from tools.data.summary import DatasetSummary, describe_dataset
from tools.data.validation import validate_arrays

__all__ = [
    "BUILTIN_DATASETS",
    "BUILTIN_PREFIX",
    "DatasetSummary",
    "PreparedData",
    "RawDataset",
    "TrainingArrays",
    "describe_dataset",
    "load_dataset",
    "load_prepared_meta",
    "load_test_arrays",
    "load_training_arrays",
    "prepare_dataset",
    "resolve_dataset_path",
    "save_prepared",
    "validate_arrays",
]
