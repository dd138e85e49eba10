"""Typed inputs and outputs shared by the tools (pydantic models).

These models are the contract between the MCP layer, the CLI and the plain
Python tools: they double as the tools' input and output JSON schemas.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Metric = Literal[
    "val_accuracy", "val_balanced_accuracy", "val_auc", "val_pr_auc", "val_f1", "val_loss"
]
METRICS: tuple[str, ...] = (
    "val_accuracy",
    "val_balanced_accuracy",
    "val_auc",
    "val_pr_auc",
    "val_f1",
    "val_loss",
)
Imbalance = Literal["smote", "class_weight", "smote+class_weight", "none"]
SamplerName = Literal["tpe", "random", "cmaes", "gp", "qmc"]
PrunerName = Literal["median", "percentile", "successive_halving", "hyperband", "patient", "none"]


def metric_direction(metric: str) -> Literal["maximize", "minimize"]:
    """Loss goes down, every other metric goes up."""
    return "minimize" if metric == "val_loss" else "maximize"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitSpec(Strict):
    """Fractions of a stratified, seeded train/val/test split (ignored when pre-split)."""

    train: float = Field(0.70, gt=0, lt=1, description="Fraction of sequences for training.")
    val: float = Field(0.15, gt=0, lt=1, description="Fraction for validation (tuning metric).")
    test: float = Field(0.15, gt=0, lt=1, description="Fraction held out for the final test.")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitSpec:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split fractions must add up to 1, got train={self.train} + val={self.val} "
                f"+ test={self.test} = {total:g}"
            )
        return self


class CsvOptions(Strict):
    """How to read a long-format CSV: one row per time step."""

    id_column: str = Field(
        "sequence_id", description="Column naming the sequence a row belongs to."
    )
    label_column: str = Field(
        "label", description="Column with the class label (constant per sequence)."
    )
    time_column: str | None = Field(
        None, description="Optional column to order rows within a sequence; file order otherwise."
    )
    feature_columns: list[str] | None = Field(
        None, description="Feature columns; default: every other column."
    )
    sequence_length: int | None = Field(
        None,
        ge=2,
        le=100_000,
        description="Pad (with zeros at the end) or truncate every sequence to this many steps. "
        "Required when sequences have unequal lengths.",
    )


class SamplerSpec(Strict):
    """Which Optuna sampler proposes params; seeded from the study seed."""

    name: SamplerName = Field("tpe", description="tpe (default), random, cmaes, gp or qmc.")
    n_startup_trials: int = Field(
        10, ge=0, le=1000, description="Random trials before TPE/GP/CMA-ES start modelling."
    )


class PrunerSpec(Strict):
    """Which Optuna pruner stops unpromising trials early, with its main options."""

    name: PrunerName = Field(
        "median",
        description="median (default), percentile, successive_halving, hyperband, patient or none.",
    )
    n_startup_trials: int = Field(
        3, ge=0, le=1000, description="median/percentile: trials that are never pruned."
    )
    n_warmup_steps: int = Field(
        3, ge=0, le=10_000, description="median/percentile: epochs before pruning applies."
    )
    percentile: float = Field(25.0, gt=0, lt=100, description="percentile: keep the top p%.")
    min_resource: int = Field(
        2, ge=1, le=10_000, description="successive_halving/hyperband: epochs at the first rung."
    )
    reduction_factor: int = Field(
        3, ge=2, le=10, description="successive_halving/hyperband: 1/eta survive each rung."
    )
    patience: int = Field(
        3, ge=1, le=10_000, description="patient: epochs without improvement before pruning."
    )


class StudyConfig(Strict):
    """Everything a study needs to behave the same tomorrow, recorded in the study."""

    format_version: int = 1
    dataset: str
    dataset_path: str | None
    dataset_sha256: str
    csv: CsvOptions | None = None
    metric: Metric
    direction: Literal["maximize", "minimize"]
    sampler: SamplerSpec
    pruner: PrunerSpec
    search_space: dict[str, dict[str, object]]
    imbalance: Imbalance
    smote_k_neighbors: int
    smote_ratio: float | None
    split: SplitSpec
    max_epochs: int
    patience: int
    seed: int
