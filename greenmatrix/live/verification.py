"""Did a scale action do what it predicted? Holding, Regressed, Ineffective or Inconclusive.

Judged only once the new replica count is ready and a settle window has passed, from the samples
of a verification window after it, and only from samples at or before `now`. A figure breaches when
it is past its bound in a sustained share of the window's samples, so one noisy sample never
triggers anything.

- A scale-in is Regressed when an SLO figure (TTFT or TPOT p95) goes past the upper end of what
  the action predicted for it, or past the SLO itself: roll back to the previous count and back off
  the cooldown. It is called once enough samples over a few minutes show it (not waiting out the
  window while the SLO is broken); Holding waits for the window to close.
- A scale-out is Ineffective ("did not help") when the SLO stays violated while utilisation per
  replica fell: more replicas took load off each one, so the limit is elsewhere (a shared backend,
  the network, a hot replica) and further scale-out should stop. It is not rolled back: the
  replicas do serve the load, and taking them away would not restore the SLO either.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from greenmatrix.interval import Interval

Verdict = Literal["Holding", "Regressed", "Ineffective", "Inconclusive"]

# The SLO figures judged; Sample, Expected and SLOLimits each have a field of these names.
FIGURES = ("ttft_p95_ms", "tpot_p95_ms")


@dataclass(frozen=True)
class Expected:
    """What the action predicted for the new replica count (80% intervals)."""

    utilization: Interval | None = None
    """Busy fraction of one replica, 0 to 1."""
    ttft_p95_ms: Interval | None = None
    tpot_p95_ms: Interval | None = None


@dataclass(frozen=True)
class SLOLimits:
    """The workload's objectives on the observed figures, where it has them."""

    ttft_p95_ms: float | None = None
    tpot_p95_ms: float | None = None


@dataclass(frozen=True)
class ScaleAction:
    """A replica change that was applied at `at` (seconds since the epoch)."""

    at: float
    from_replicas: int
    to_replicas: int
    expected: Expected = Expected()
    slo: SLOLimits = SLOLimits()


@dataclass(frozen=True)
class Sample:
    """What the deployment was seen doing at `at`; a figure the metrics lacked is None."""

    at: float
    ready_replicas: int | None = None
    utilization: float | None = None
    """Busy fraction of one replica, 0 to 1."""
    ttft_p95_ms: float | None = None
    tpot_p95_ms: float | None = None


@dataclass(frozen=True)
class VerificationRule:
    """How long to wait and how much evidence a verdict needs."""

    settle_s: float = 120.0
    """After the new count is ready, before samples count (caches warm, queues drain)."""
    window_s: float = 600.0
    """Length of the verification window after settling."""
    min_samples: int = 5
    """Fewest samples of a figure in the window for a verdict on it."""
    breach_share: float = 0.5
    """Share of the window's samples past the bound that makes a breach sustained."""
    min_breach_s: float = 180.0
    """Least time into the window before a scale-in's breach is called, ahead of the window's end."""
    utilization_drop: float = 0.05
    """Relative fall in utilisation per replica that counts as "fell" after a scale-out."""
    max_cooldown_s: float = 3600.0
    """Ceiling of the backed-off cooldown."""


@dataclass(frozen=True)
class Verification:
    """The verdict on one action, why, and what to do about it."""

    verdict: Verdict
    reason: str
    rollback_to: int | None = None
    """The replica count to go back to (the previous one), for a Regressed scale-in."""
    cooldown_s: float | None = None
    """The backed-off cooldown to apply after a Regressed or Ineffective action."""
    stop_scale_out: bool = False
    """Whether further scale-out should stop (a scale-out that did not help)."""
    breach_share: float | None = None
    """Share of the window's samples past the bound, for the worst figure."""
    window: tuple[float, float] | None = None
    """The verification window (start, end) the verdict read, once it opened."""


@dataclass(frozen=True)
class _Breach:
    figure: str
    bound: float
    share: float
    samples: int
    median: float


def _ready_at(action: ScaleAction, seen: Sequence[Sample]) -> float | None:
    """When the deployment first showed the new count ready (a scale-in: the old replicas gone)."""
    out = action.to_replicas > action.from_replicas
    for s in seen:
        if s.ready_replicas is None:
            continue
        if (s.ready_replicas >= action.to_replicas) if out else (s.ready_replicas <= action.to_replicas):
            return s.at
    return None


def _bound(action: ScaleAction, figure: str, use_prediction: bool) -> float | None:
    """The figure's limit: the predicted upper end (when `use_prediction`) or the SLO, the lower."""
    limits = [getattr(action.slo, figure)]
    predicted: Interval | None = getattr(action.expected, figure)
    if use_prediction and predicted is not None:
        limits.append(predicted.p90)
    known = [x for x in limits if x is not None]
    return min(known) if known else None


def _breaches(
    action: ScaleAction, window: Sequence[Sample], rule: VerificationRule, use_prediction: bool
) -> list[_Breach]:
    """Each judged figure with enough samples: its bound and the share of samples past it."""
    out = []
    for figure in FIGURES:
        bound = _bound(action, figure, use_prediction)
        values = [v for v in (getattr(s, figure) for s in window) if v is not None]
        if bound is None or len(values) < rule.min_samples:
            continue
        share = sum(v > bound for v in values) / len(values)
        out.append(_Breach(figure, bound, share, len(values), statistics.median(values)))
    return out


def _utilization(samples: Sequence[Sample]) -> float | None:
    values = [s.utilization for s in samples if s.utilization is not None]
    return statistics.median(values) if values else None


def _backoff(cooldown_s: float, rule: VerificationRule) -> float:
    """Double the cooldown, and at least one verification window, so the next action is judged too."""
    return min(max(2.0 * cooldown_s, rule.settle_s + rule.window_s), rule.max_cooldown_s)


def _describe(b: _Breach) -> str:
    name = "TTFT p95" if b.figure.startswith("ttft") else "TPOT p95"
    return f"{name} {b.median:.3g} ms (median) past {b.bound:.3g} ms in {b.share:.0%} of {b.samples} samples"


def verify(
    action: ScaleAction,
    samples: Sequence[Sample],
    now: float,
    *,
    cooldown_s: float,
    rule: VerificationRule = VerificationRule(),
) -> Verification:
    """The verdict on `action` from the samples seen up to `now`; `cooldown_s` is the cooldown in
    force, which a Regressed or Ineffective verdict backs off."""
    if action.to_replicas == action.from_replicas:
        return Verification("Inconclusive", "the action did not change the replica count")
    seen = sorted((s for s in samples if s.at <= now), key=lambda s: s.at)
    ready = _ready_at(action, [s for s in seen if s.at >= action.at])
    if ready is None:
        waited = now - action.at
        return Verification(
            "Inconclusive", f"waiting for {action.to_replicas} ready replicas ({waited:.0f} s so far)"
        )
    start = ready + rule.settle_s
    if now < start:
        why = f"settling for {start - now:.0f} s more after the replicas are ready"
        return Verification("Inconclusive", why)
    end = start + rule.window_s
    window = [s for s in seen if start <= s.at <= end]
    if action.to_replicas < action.from_replicas:
        return _scale_in(action, window, (start, end), now, cooldown_s, rule)
    before = [s for s in seen if action.at - rule.window_s <= s.at < action.at]
    return _scale_out(action, window, before, (start, end), now >= end, cooldown_s, rule)


def _scale_in(
    action: ScaleAction,
    window: Sequence[Sample],
    span: tuple[float, float],
    now: float,
    cooldown_s: float,
    rule: VerificationRule,
) -> Verification:
    complete = now >= span[1]
    breaches = _breaches(action, window, rule, use_prediction=True)
    if not breaches:
        return _unjudged(action, window, span, use_prediction=True)
    worst = max(breaches, key=lambda b: b.share)
    if worst.share >= rule.breach_share and (complete or now >= span[0] + rule.min_breach_s):
        # A sustained breach is acted on at once: waiting out the window would keep the SLO broken.
        return Verification(
            "Regressed",
            f"scale-in {action.from_replicas} -> {action.to_replicas}: {_describe(worst)};"
            f" roll back to {action.from_replicas}",
            rollback_to=action.from_replicas,
            cooldown_s=_backoff(cooldown_s, rule),
            breach_share=worst.share,
            window=span,
        )
    if worst.share >= rule.breach_share:
        why = f"{_describe(worst)} so far; a breach is called after {rule.min_breach_s:.0f} s of the window"
        return Verification("Inconclusive", why, breach_share=worst.share, window=span)
    if not complete:
        why = f"within the prediction so far ({_describe(worst)}); window still open"
        return Verification("Inconclusive", why, window=span)
    return Verification(
        "Holding",
        f"scale-in {action.from_replicas} -> {action.to_replicas} holds: {_describe(worst)}"
        + _utilization_text(action, window),
        breach_share=worst.share,
        window=span,
    )


def _scale_out(
    action: ScaleAction,
    window: Sequence[Sample],
    before: Sequence[Sample],
    span: tuple[float, float],
    complete: bool,
    cooldown_s: float,
    rule: VerificationRule,
) -> Verification:
    # "Still violated" is judged against the SLO; the prediction stands in where there is none.
    use_prediction = not _has_slo(action)
    breaches = _breaches(action, window, rule, use_prediction=use_prediction)
    if not breaches:
        return _unjudged(action, window, span, use_prediction=use_prediction)
    if not complete:
        return Verification("Inconclusive", "window still open", window=span)
    worst = max(breaches, key=lambda b: b.share)
    change = f"scale-out {action.from_replicas} -> {action.to_replicas}"
    if worst.share < rule.breach_share:
        return Verification(
            "Holding",
            f"{change} holds: {_describe(worst)}" + _utilization_text(action, window),
            breach_share=worst.share,
            window=span,
        )
    fell, how = _utilization_fell(action, window, before, rule)
    if not fell:
        return Verification(
            "Inconclusive",
            f"{change}: {_describe(worst)} and utilisation per replica {how}: demand may have grown"
            " or the step was too small; the next decision sizes it",
            breach_share=worst.share,
            window=span,
        )
    return Verification(
        "Ineffective",
        f"{change} did not help: {_describe(worst)} while utilisation per replica {how};"
        " the limit is elsewhere, so no further scale-out",
        cooldown_s=_backoff(cooldown_s, rule),
        stop_scale_out=True,
        breach_share=worst.share,
        window=span,
    )


def _unjudged(
    action: ScaleAction, window: Sequence[Sample], span: tuple[float, float], use_prediction: bool
) -> Verification:
    """Inconclusive for want of a bound to judge against, or of samples."""
    if all(_bound(action, f, use_prediction) is None for f in FIGURES):
        return Verification("Inconclusive", "no SLO or prediction of TTFT or TPOT to judge against")
    return Verification("Inconclusive", f"too few samples in the window ({len(window)})", window=span)


def _has_slo(action: ScaleAction) -> bool:
    return any(getattr(action.slo, f) is not None for f in FIGURES)


def _utilization_fell(
    action: ScaleAction, window: Sequence[Sample], before: Sequence[Sample], rule: VerificationRule
) -> tuple[bool, str]:
    """Whether utilisation per replica fell after a scale-out (against the window before it, else
    against the prediction), and the figures in words."""
    after = _utilization(window)
    if after is None:
        return False, "unknown"
    earlier = _utilization(before)
    if earlier is not None:
        return after <= earlier * (1 - rule.utilization_drop), f"went {earlier:.2f} -> {after:.2f}"
    predicted = action.expected.utilization
    if predicted is not None:
        return after <= predicted.p90, f"is {after:.2f} ({_predicted_text(predicted)})"
    return False, f"is {after:.2f} with nothing before to compare"


def _utilization_text(action: ScaleAction, window: Sequence[Sample]) -> str:
    after = _utilization(window)
    predicted = action.expected.utilization
    if after is None:
        return ""
    text = f"; utilisation per replica {after:.2f}"
    return text if predicted is None else f"{text} ({_predicted_text(predicted)})"


def _predicted_text(i: Interval) -> str:
    return f"predicted {i.p50:.2f} [{i.p10:.2f}-{i.p90:.2f}]"
