"""Latency (hence a replica's capacity) corrected by what the deployment is seen doing.

A prediction starts as the performance model's median with its 80% interval. Rows a running
deployment produced (the prediction for them, and what was measured) correct it in log space,
per deployment configuration, as a two-level normal model:

    log(measured / predicted median) = b_family + d_configuration + s_configuration * dlog(load) + scatter

- a *configuration* is what stays fixed while a deployment serves (GPU system, model, serving
  engine, aggregated or disaggregated, precisions, parallel layout, request lengths); only the
  concurrency moves with load, so its observations are one concurrency sweep;
- a *family* is every configuration of one model on one GPU type: an error of the roofline for that
  GPU (bandwidth reached, kernel efficiency) is largely shared, so another configuration's evidence
  transfers, with more shrinkage;
- the slope along log load (concurrency) is the configuration's own, learned from its sweep and
  shrunk toward 0 (the model's own concurrency dependence): a deployment seen at 4, 16 and 64
  requests in flight says how the error moves toward 128, with an uncertainty growing with the
  distance from what was seen;
- the prior variances come from the model's own interval: its 80% log-width gives the variance of
  a prediction's error, split into a share that is scatter between neighbouring concurrencies of
  one configuration (the data's own inconsistency, see models/serving.md, "What the data allows")
  and a bias shared by the configuration, itself split into the family's part and its own.

Residuals are measured in units of the row's own model sigma, so evidence from rows with wider
intervals counts as such. With no observation a prediction is returned unchanged; each observation
moves the correction toward the measured ratio (one part of the way, many fully) and narrows the interval
from the model's toward the posterior uncertainty of the correction plus the scatter, whose size is
itself updated by the scatter observed within configurations.

Pure numpy: the caller passes the predictions, the measured values, the loads and the keys (any
hashable; `greenmatrix.batch.observed.configuration_key` and `family_key` are the serving ones).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

# z of the 10th/90th percentiles: an 80% interval spans 2 x 1.2816 standard deviations.
_Z80 = 1.2815515655446004


@dataclass(frozen=True)
class Prior:
    """How the model's interval variance divides, and how firmly the scatter's share is believed."""

    # Share of a prediction's log-variance that is scatter between concurrencies of one configuration.
    # Leave-one-GPU-out residuals of the serving model put it at 0.19-0.54 (median 0.3) for each GPU
    # and target (`hack/bench_observed.py --split`).
    scatter_share: float = 0.3
    # Share of the remaining bias common to every configuration of the GPU and model: the same
    # residuals put it at 0.22-0.60 for TPOT (median 0.34), 0.11-0.43 for TTFT (median 0.18).
    family_share: float = 0.3
    # Pseudo-observations behind scatter_share: the scatter seen within configurations outweighs it
    # once a few sweeps are observed.
    scatter_weight: float = 4.0
    # Prior variance of a configuration's error slope along log load (sigma units per e-fold of
    # concurrency): the model's concurrency dependence can be off, and three loads show by how much.
    load_slope: float = 0.1

    def __post_init__(self) -> None:
        for name in ("scatter_share", "family_share"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        for name in ("scatter_weight", "load_slope"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Correction:
    """The correction one prediction gets, in units of the row's model sigma.

    ``shift`` and ``variance`` are the posterior mean and variance of the row's bias; ``scatter`` the
    scatter variance (prior and observed pooled); ``own`` how many observed rows are of the row's
    own configuration, ``related`` how many of other configurations of its GPU and model.
    """

    shift: float = 0.0
    variance: float = 1.0
    scatter: float = 0.0
    own: int = 0
    related: int = 0

    @property
    def observations(self) -> int:
        return self.own + self.related

    @property
    def narrowing(self) -> float:
        """Predictive sigma over the model's (1 with no evidence): the interval's log-width shrinks by it."""
        # The model's interval is the prior predictive, sigma 1 in these units (bias plus scatter shares).
        return math.sqrt(self.variance + self.scatter) if self.observations else 1.0

    def factor(self, sigma: float) -> tuple[float, float, float]:
        """The median's correction factor for a row of model log-sigma `sigma`, with its 80% interval."""
        spread = _Z80 * math.sqrt(self.variance) * sigma
        centre = self.shift * sigma
        return math.exp(centre - spread), math.exp(centre), math.exp(centre + spread)

    def basis(self, sigma: float) -> str:
        """What corrected the prediction, e.g. "corrected by 3 observations of this configuration:
        x0.82 [0.74-0.91]"; empty when nothing did."""
        if not self.observations:
            return ""
        low, mid, high = self.factor(sigma)
        parts = []
        if self.own:
            parts.append(f"{_count(self.own)} of this configuration")
        if self.related:
            parts.append(f"{_count(self.related)} of other configurations of this GPU and model")
        return f"corrected by {' and '.join(parts)}: x{mid:.2f} [{low:.2f}-{high:.2f}]"


def _count(n: int) -> str:
    return f"{n} observation{'s' if n != 1 else ''}"


_NO_CORRECTION = Correction()


@dataclass(frozen=True)
class _Group:
    """Observed rows of one configuration (sigma units): count, mean residual, and the residual's
    spread along log load: its mean, sum of squares and cross-products about that mean."""

    family: Hashable
    count: int
    mean: float
    centre: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0

    def slope(self, scatter: float, prior_variance: float) -> tuple[float, float]:
        """Posterior mean and variance of the residual's slope along log load (prior centred at 0)."""
        precision = 1.0 / prior_variance + self.sxx / scatter
        return self.sxy / scatter / precision, 1.0 / precision


@dataclass(frozen=True)
class Calibration:
    """Corrections learned from observed rows, for one target (TTFT or TPOT)."""

    prior: Prior
    scatter: float  # posterior scatter variance, sigma units
    groups: dict[Hashable, _Group] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        configurations: Sequence[Hashable],
        families: Sequence[Hashable],
        p10: Sequence[float],
        p50: Sequence[float],
        p90: Sequence[float],
        measured: Sequence[float],
        load: Sequence[float] | None = None,
        prior: Prior | None = None,
    ) -> Calibration:
        """Learn from observed rows: each row's configuration and family key, the model's prediction for
        it (p10, p50, p90), the value measured and optionally the load it was served at (concurrency:
        positive). Values must be positive with p10 <= p50 <= p90."""
        prior = prior or Prior()
        z = _standardised(measured, p10, p50, p90)
        x = _log_load(load, len(z))
        by_config: dict[Hashable, list[int]] = {}
        family_of: dict[Hashable, Hashable] = {}
        for i, (config, family) in enumerate(zip(configurations, families, strict=True)):
            by_config.setdefault(config, []).append(i)
            if family_of.setdefault(config, family) != family:
                raise ValueError(f"configuration {config!r} is in two families")
        groups = {}
        squares = freedom = 0.0
        for config, rows in by_config.items():
            dx, dz = x[rows] - x[rows].mean(), z[rows] - z[rows].mean()
            mean, centre = float(z[rows].mean()), float(x[rows].mean())
            group = _Group(family_of[config], len(rows), mean, centre, float(dx @ dx), float(dx @ dz))
            groups[config] = group
            # The spread left around each configuration's own line (its slope judged against the
            # prior scatter), with n - 1 degrees of freedom less the share of one the slope takes.
            slope, slope_var = group.slope(prior.scatter_share, prior.load_slope)
            squares += float(((dz - slope * dx) ** 2).sum())
            freedom += len(rows) - 1 - group.sxx / prior.scatter_share * slope_var
        # Scatter: the prior's share, worth scatter_weight observations, pooled with what was seen.
        weight = prior.scatter_weight
        scatter = (weight * prior.scatter_share + squares) / (weight + freedom)
        return cls(prior, scatter, groups)

    def correction(self, configuration: Hashable, family: Hashable, load: float | None = None) -> Correction:
        """The posterior correction for a row of this configuration and family, served at `load`."""
        own = self.groups.get(configuration)
        others = [g for c, g in self.groups.items() if g.family == family and c != configuration]
        if own is None and not others:
            return _NO_CORRECTION
        bias = 1.0 - self.prior.scatter_share
        family_var = bias * self.prior.family_share
        config_var = bias - family_var
        # The family's bias from the other configurations: each one's mean is its own bias plus
        # scatter around the family's.
        precision = 1.0 / family_var
        weighted = 0.0
        for g in others:
            noise = config_var + self.scatter / g.count
            precision += 1.0 / noise
            weighted += g.mean / noise
        mean, variance = weighted / precision, 1.0 / precision + config_var
        if own is not None:
            # This configuration's bias (at its observed loads' centre): the family's estimate as its
            # prior, its own rows as evidence; then its own slope along load, if it has one.
            noise = self.scatter / own.count
            precision = 1.0 / variance + 1.0 / noise
            mean = (mean / variance + own.mean / noise) / precision
            variance = 1.0 / precision
            if load is not None:
                slope, slope_var = own.slope(self.scatter, self.prior.load_slope)
                offset = math.log(load) - own.centre
                mean, variance = mean + slope * offset, variance + slope_var * offset**2
        related = sum(g.count for g in others)
        return Correction(mean, variance, self.scatter, own.count if own else 0, related)

    def apply(
        self,
        configurations: Sequence[Hashable],
        families: Sequence[Hashable],
        p10: Sequence[float],
        p50: Sequence[float],
        p90: Sequence[float],
        point: Sequence[float] | None = None,
        load: Sequence[float] | None = None,
    ) -> Corrected:
        """Corrected predictions for new rows (the same kinds of arguments as `fit`, without the
        measurement). ``point`` (a single value off the median, e.g. the least-relative-error one)
        moves with the median, its log-distance from it scaled by the narrowing squared (for a
        log-normal that distance grows with the variance) and kept inside the interval."""
        lo, mid, hi, sigma = _bands(p10, p50, p90)
        pt = mid.copy() if point is None else np.asarray(point, float)
        if pt.shape != mid.shape or not (pt > 0).all():
            raise ValueError("point must be one positive number per row")
        down, up, off = np.log(lo / mid), np.log(hi / mid), np.log(pt / mid)
        out = np.stack([lo, mid, hi, pt]).copy()
        bases = [""] * len(mid)
        loads = np.exp(_log_load(load, len(mid))) if load is not None else [None] * len(mid)
        for i, key in enumerate(zip(configurations, families, strict=True)):
            c = self.correction(*key, load=loads[i])
            if not c.observations:
                continue
            s = c.narrowing
            centre = mid[i] * math.exp(c.shift * sigma[i])
            low, high = centre * math.exp(s * down[i]), centre * math.exp(s * up[i])
            out[:, i] = low, centre, high, min(max(centre * math.exp(s * s * off[i]), low), high)
            bases[i] = c.basis(float(sigma[i]))
        return Corrected(out[0], out[1], out[2], out[3], bases)


@dataclass(frozen=True)
class Corrected:
    """Corrected predictions: p10, p50, p90 and point per row, and what corrected each ("" if nothing)."""

    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray
    point: np.ndarray
    basis: list[str]


def _log_load(load: Sequence[float] | None, n: int) -> np.ndarray:
    if load is None:
        return np.zeros(n)
    values = np.asarray(load, float)
    if values.shape != (n,) or not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError("load must be one positive finite number per row")
    return np.log(values)


def _bands(
    p10: Sequence[float], p50: Sequence[float], p90: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model's p10, p50, p90 as arrays, checked, and each row's log sigma (80% log-width / 2.56)."""
    lo, mid, hi = (np.asarray(a, float) for a in (p10, p50, p90))
    if not (lo.shape == mid.shape == hi.shape and np.isfinite([lo, mid, hi]).all() and (lo > 0).all()):
        raise ValueError("predictions must be positive finite numbers, as many p10 and p90 as p50")
    if not ((lo <= mid) & (mid <= hi)).all():
        raise ValueError("predictions must satisfy p10 <= p50 <= p90")
    return lo, mid, hi, np.log(hi / lo) / (2 * _Z80)


def _standardised(
    measured: Sequence[float], p10: Sequence[float], p50: Sequence[float], p90: Sequence[float]
) -> np.ndarray:
    """log(measured / p50) in units of each row's model sigma."""
    _lo, mid, _hi, sigma = _bands(p10, p50, p90)
    values = np.asarray(measured, float)
    if values.shape != mid.shape or not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError("measurements must be positive finite numbers, one per prediction")
    return np.log(values / mid) / np.maximum(sigma, 1e-6)
