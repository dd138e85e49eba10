"""`builtin:gait`: a SYNTHETIC, seeded gait dataset (3-axis accelerometer at the lower back).

Nothing here was recorded from people. Each sequence is a ~2.5 s window of a
simulated walk sampled at `timesteps` points:

- vertical axis: gravity plus a heel-strike double bump at every step;
- anterior-posterior axis: a sinusoid at the step frequency;
- mediolateral axis: sway at half the step frequency (one period per stride);

with a per-subject cadence (1.6-2.2 steps/s), amplitude and phase, per-step
jitter, sensor noise and a slow drift on every axis.

The two classes differ only in stride symmetry. "normal" walkers repeat the
same step on both feet. "asymmetric" walkers (the minority, about 20%) make
every other step 30-50% weaker and 6-12% longer. Because phase and
cadence vary per subject, a linear model on the raw samples scores at chance
(balanced accuracy ~0.5), while one feature comparing consecutive heel-strike
peaks with every-other-step peaks reaches ~0.85 (see tests/test_gait.py): the
signal is there for a sequence model that learns to compare alternate steps.
"""

from __future__ import annotations

import numpy as np

LABELS = ("normal", "asymmetric")
MINORITY_FRACTION = 0.2
WINDOW_SECONDS = 2.5


def make_gait_dataset(
    n_sequences: int = 480, timesteps: int = 64, seed: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """Return X (n, timesteps, 3) float32 and y (n,) str labels "normal" / "asymmetric"."""
    rng = np.random.default_rng(seed)
    n_minority = round(n_sequences * MINORITY_FRACTION)
    is_asymmetric = np.zeros(n_sequences, dtype=bool)
    is_asymmetric[rng.choice(n_sequences, size=n_minority, replace=False)] = True
    t = np.linspace(0.0, WINDOW_SECONDS, timesteps, endpoint=False)
    X = np.stack([_walk(t, bool(asym), rng) for asym in is_asymmetric]).astype(np.float32)
    y = np.where(is_asymmetric, LABELS[1], LABELS[0])
    return X, y


def _walk(t: np.ndarray, asymmetric: bool, rng: np.random.Generator) -> np.ndarray:
    """One subject's window: (timesteps, 3) vertical, anterior-posterior, mediolateral."""
    step_period = 1.0 / rng.uniform(1.6, 2.2)
    durations, amplitudes = _steps(step_period, asymmetric, rng)
    # Start mid-stride at a random point so classes cannot be told apart by alignment.
    onsets = np.cumsum(np.concatenate([[0.0], durations[:-1]])) - rng.uniform(0, 2 * step_period)
    phase, step_index = _step_phase(t, onsets, durations)
    step_gain = amplitudes[step_index]
    scale = rng.uniform(0.85, 1.15)

    vertical = 1.0 + scale * step_gain * _heel_strike(phase, rng)
    anterior = 0.35 * scale * step_gain * np.sin(2 * np.pi * phase + rng.uniform(-0.3, 0.3))
    # Sway has one period per stride: two steps.
    sway = 0.25 * scale * np.sin(np.pi * (phase + step_index) + rng.uniform(0, 2 * np.pi))
    signal = np.stack([vertical, anterior, sway], axis=1)
    noisy: np.ndarray = signal + _drift(t, rng) + rng.normal(0.0, 0.05, size=signal.shape)
    return noisy


def _steps(
    step_period: float, asymmetric: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Duration and amplitude of enough steps to cover the window (with margin)."""
    n_steps = int(np.ceil((WINDOW_SECONDS + 2 * step_period) / (0.9 * step_period))) + 2
    durations = step_period * rng.normal(1.0, 0.015, n_steps)
    amplitudes = rng.normal(1.0, 0.04, n_steps)
    if asymmetric:
        weaker = slice(int(rng.integers(2)), None, 2)
        amplitudes[weaker] *= 1.0 - rng.uniform(0.3, 0.5)
        durations[weaker] *= 1.0 + rng.uniform(0.06, 0.12)
    return durations, amplitudes


def _step_phase(
    t: np.ndarray, onsets: np.ndarray, durations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Position within the current step (0..1) and that step's index, at every time point."""
    step_index = np.searchsorted(onsets, t, side="right") - 1
    phase = (t - onsets[step_index]) / durations[step_index]
    return phase, step_index


def _heel_strike(phase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Impact peak right after heel strike, then a smaller push-off peak."""
    impact_at, push_at = rng.uniform(0.08, 0.14), rng.uniform(0.45, 0.55)
    impact = np.exp(-0.5 * ((phase - impact_at) / 0.1) ** 2)
    push_off = 0.55 * np.exp(-0.5 * ((phase - push_at) / 0.12) ** 2)
    return impact + push_off - 0.3


def _drift(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slow per-axis drift (sensor tilt and bias), a fraction of a step's amplitude."""
    slope = rng.normal(0.0, 0.06, 3)
    wobble = rng.normal(0.0, 0.05, 3)
    wobble_hz = rng.uniform(0.1, 0.3)
    offset = rng.normal(0.0, 0.05, 3)
    slow = np.sin(2 * np.pi * wobble_hz * t + rng.uniform(0, 2 * np.pi))
    result: np.ndarray = offset + np.outer(t, slope) + np.outer(slow, wobble)
    return result
