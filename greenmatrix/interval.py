"""The engine's one interval type: a median with its 80% band, importable without the learned models.

Predictions (latency, throughput, training time), forecasts and decisions all carry one, so a reader
of any number GreenMatrix gives also sees how sure it is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """An 80% prediction interval with its median, in the target's own units.

    ``point`` is the single value with the least expected relative (percentage) error, where the
    model has one (`CorrectionModel.predict_with_point`): decisions use the median, a one-number answer
    judged by its relative error (the batch prediction contract) uses ``estimate``.
    """

    p10: float
    p50: float
    p90: float
    point: float | None = None

    @property
    def estimate(self) -> float:
        return self.p50 if self.point is None else self.point

    def scaled(self, factor: float) -> Interval:
        point = None if self.point is None else self.point * factor
        return Interval(self.p10 * factor, self.p50 * factor, self.p90 * factor, point)
