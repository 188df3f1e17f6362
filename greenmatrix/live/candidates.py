"""The candidate forecasters a walk runs side by side; the forecast keeps whichever erred least lately.

`Regression` is least squares on the features of `features.FeatureBook` (the change from the last
value to the target, explained by recent means and seasonal profiles), refitted at every checkpoint
from statistics that forget at a fixed half-life, so a long series costs one pass. In logarithms the
same regression reads bursty demand better (its errors are multiples, and the median of a symmetric
error in logs is the median in the series' units); in the series' own units it reads series near
zero or capped better. `last_value` is the floor both must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from greenmatrix.live.features import FeatureBook
from greenmatrix.live.seasonality import DAY

MEMORY_HALF_LIFE = 3 * DAY
MIN_FIT_PAIRS = 30
RIDGE = 0.01
# The logarithm's offset, as a share of the level of the first rows: zeros stay finite and noise
# near zero does not pass for large relative swings.
LOG_OFFSET = 0.1
OFFSET_FROM_FIRST_ROWS = 33


@dataclass(frozen=True)
class FitMemory:
    """Where a regression's fit stands: its weighted statistics after the checkpoint `previous`, the
    training pairs they hold (`done`), and the weights of every checkpoint so far. A fit resumed
    from it gives the weights a fit over the whole history gives."""

    gram: np.ndarray
    moment: np.ndarray
    done: int
    previous: int
    weights: np.ndarray


class Regression:
    """One regression forecaster on a regular grid, in the series' units or in logarithms.

    `memory` resumes the fit where an earlier, shorter grid of the same series left it (its
    checkpoints are not refitted); that grid must have held the rows the logarithm's offset reads.
    `book` is the feature book of this grid (in logarithms for the logarithmic one) built for a lead
    at most `lead`, shared with regressions at other leads.
    """

    def __init__(
        self,
        values: np.ndarray,
        step: float,
        lead: int,
        checkpoints: np.ndarray,
        periods: list[tuple[float, ...]],
        *,
        logarithmic: bool,
        memory: FitMemory | None = None,
        book: FeatureBook | None = None,
    ) -> None:
        self.offset = log_offset(values) if logarithmic else None
        if book is None:
            book = FeatureBook(values if self.offset is None else np.log(values + self.offset), step, lead)
        self.book = book.for_lead(lead)
        grid = self.book.values
        self.ceiling = np.fmax.accumulate(np.where(np.isfinite(values), values, -np.inf))
        self.memory = memory
        self.weights = self._fit(grid, step, lead, checkpoints, periods)

    def _fit(
        self,
        grid: np.ndarray,
        step: float,
        lead: int,
        checkpoints: np.ndarray,
        periods: list[tuple[float, ...]],
    ) -> np.ndarray:
        """Weights after each checkpoint (NaN before enough pairs), from pairs whose target it has seen.

        Leaves in `self.memory` the fit after the last checkpoint inside the grid: one on its end
        would see more targets once the grid grows."""
        book = self.book
        weights = np.full((len(checkpoints), book.width), np.nan)
        decay = 0.5 ** (1.0 / max(1.0, MEMORY_HALF_LIFE / step))
        origins = np.flatnonzero(np.isfinite(grid[: max(0, len(grid) - lead)]))
        origins = origins[np.isfinite(grid[origins + lead])]
        targets = origins + lead
        gram, moment = np.zeros((book.width, book.width)), np.zeros(book.width)
        done, previous, first = 0, 0, 0
        if self.memory is not None:
            gram, moment = self.memory.gram.copy(), self.memory.moment.copy()
            done, previous, first = self.memory.done, self.memory.previous, len(self.memory.weights)
            weights[:first] = self.memory.weights
        features, change = book.training(origins[done:])
        start = done
        inside = int(np.searchsorted(checkpoints, len(grid))) - 1
        for index in range(first, len(checkpoints)):
            checkpoint = checkpoints[index]
            fade = decay ** float(checkpoint - previous)
            gram *= fade
            moment *= fade
            upto = int(np.searchsorted(targets, checkpoint, side="right"))
            if upto > done:
                age = decay ** (checkpoint - targets[done:upto]).astype(float)
                batch = features[done - start : upto - start] * age[:, None]
                gram += batch.T @ features[done - start : upto - start]
                moment += batch.T @ change[done - start : upto - start]
            if upto >= MIN_FIT_PAIRS:
                weights[index] = _solve(gram, moment, book.columns(periods[index]))
            done, previous = upto, checkpoint
            if index == inside:
                self.memory = FitMemory(
                    gram.copy(), moment.copy(), done, previous, weights[: index + 1].copy()
                )
        return weights

    def predict(self, origins: np.ndarray, leads: np.ndarray, fits: np.ndarray) -> np.ndarray:
        """Medians at origin + lead, using the fit of checkpoint index `fits` (at or before the origin)."""
        features, last = self.book.queries(origins, leads)
        guess = last + np.einsum("ij,ij->i", features, self.weights[fits])
        if self.offset is not None:
            # A logarithm extrapolates into multiples; nothing above twice the highest value seen is believed.
            guess = np.minimum(np.exp(guess) - self.offset, 2.0 * self.ceiling[origins])
        return np.maximum(0.0, guess)


def last_value(values: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """The last observed value at or before each origin (NaN before the first)."""
    seen = np.isfinite(values)
    index = np.where(seen, np.arange(len(values)), -1)
    np.maximum.accumulate(index, out=index)
    at = index[origins]
    return np.where(at >= 0, values[np.maximum(at, 0)], np.nan)


def recent_median(values: np.ndarray, origins: np.ndarray, window: int) -> np.ndarray:
    """The median of the observed values in the `window` slots up to each origin (the last value if none)."""
    padded = np.concatenate((np.full(window - 1, np.nan), values))
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)[origins]
    ordered = np.sort(windows, axis=1)
    count = np.isfinite(ordered).sum(axis=1)
    rows = np.arange(len(origins))
    low = ordered[rows, np.maximum(count - 1, 0) // 2]
    high = ordered[rows, np.maximum(count, 1) // 2]
    return np.where(count > 0, (low + high) / 2, last_value(values, origins))


def log_offset(values: np.ndarray) -> float:
    first = values[:OFFSET_FROM_FIRST_ROWS]
    first = first[np.isfinite(first)]
    level = float(np.median(first)) if len(first) else 0.0
    top = float(first.max()) if len(first) else 0.0
    return max(LOG_OFFSET * level, 0.01 * top, 1e-9)


def _solve(gram: np.ndarray, moment: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Ridge least squares on the chosen columns; the others weigh zero (the last value stands)."""
    weights = np.zeros(len(moment))
    sub = gram[np.ix_(columns, columns)]
    diagonal = np.diag(sub).copy()
    scale = float(diagonal.max()) if len(diagonal) else 0.0
    if scale <= 0:
        return weights
    sub = sub + np.diag(RIDGE * diagonal + 1e-12 * scale)
    weights[columns] = np.linalg.solve(sub, moment[columns])
    return weights
