"""Guarded auto-apply: after a live evaluation, apply its replica decision to the target's scale
subresource when every part of the gate is open, check later that it did what it predicted, and roll a
regressed scale-in back.

One step reads like the sentence: settle an intent a crash may have left, verify the last action,
pass the gate, ask the recorded actions what they still forbid, then record the intent (in the
status, with the target's generation) and only then patch. The rules are the engine's
(`greenmatrix.live.actuation`, `greenmatrix.live.verification`); here are the reads, the writes and
the memory of one process (when each workload was first watched, the samples a verification reads).
What must survive a restart (the actions, their cooldowns) lives in the status.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

from greenmatrix import (
    ActionRecord,
    Autoscaler,
    Expected,
    Gate,
    GateInputs,
    Interval,
    OptimizationPolicySpec,
    Sample,
    ScaleAction,
    SLOLimits,
    Verdict,
    VerificationRule,
    cooldown_of,
    gate,
    next_cooldown,
    permitted,
    rollback_to,
    settle,
    verify,
)
from greenmatrix_operator.adapters import kube
from greenmatrix_operator.adapters.scale import ScaleConflict, ScaleForbidden
from greenmatrix_operator.metrics import OperatorMetrics
from greenmatrix_operator.records import ObjectKey, ObjectRecord, PolicyView
from greenmatrix_operator.settings import ActuationSettings
from greenmatrix_operator.status.actions import action_fields, conditions_in, history_of
from greenmatrix_operator.status.conditions import AUTO_APPLY, CONFLICT, ROLLED_BACK, ConditionState

logger = logging.getLogger(__name__)

SCALE_FORBIDDEN = "ScaleForbidden"
AUTOSCALERS_UNREADABLE = "AutoscalersUnreadable"
NO_OTHER_AUTOSCALER = "NoOtherAutoscaler"
SCALE_IN_REGRESSED = "ScaleInRegressed"
# A verification still Inconclusive this long after the action is closed as such.
_GIVE_UP_WINDOWS = 3
# An intent found unconfirmed is retried while younger than its cooldown, and at least this long.
_MIN_INTENT_AGE_S = 60.0


class Scaler(Protocol):
    """What the actuator needs of the scale adapter (`adapters.scale.ScaleClient`)."""

    async def scale(
        self, namespace: str, kind: str, name: str, replicas: int, resource_version: str
    ) -> int: ...
    async def autoscalers(
        self, namespace: str, kind: str, name: str, *, max_age: float | None = None
    ) -> tuple[Autoscaler, ...]: ...


class Targets(Protocol):
    async def read(self, namespace: str, kind: str, name: str) -> Mapping[str, Any]: ...


PostEvent = Callable[[ObjectRecord, str, str, str], Awaitable[None]]


@dataclass(frozen=True)
class ActuationView:
    """The auto-apply part of a status: its conditions and the action history fields."""

    conditions: tuple[ConditionState, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Intent:
    """An action recorded in the status, to be patched once that write succeeded."""

    action: ActionRecord
    kind: str
    name: str
    resource_version: str
    history: tuple[ActionRecord, ...]
    """The whole history, the intent first."""
    gate: Gate


@dataclass(frozen=True)
class Step:
    view: ActuationView
    intent: Intent | None = None


class _Plan(NamedTuple):
    history: tuple[ActionRecord, ...]
    intent: Intent | None
    blocked: tuple[str, str] | None
    opened: Gate
    tally: tuple[tuple[str, str], ...] = ()
    """(counter, label) to count once this plan is the one taken (a plan may be made twice)."""


@dataclass
class _Watch:
    since: float
    """When this process first evaluated the workload: its guardrail memory starts there."""
    samples: deque[Sample]
    last_gate: str | None = None
    view: ActuationView | None = None
    """The view of the last step, which stands between evaluations."""


class Actuator:
    """Applies, verifies and rolls back replica decisions for WorkloadProfiles under an Auto policy."""

    def __init__(
        self,
        scaler: Scaler,
        targets: Targets,
        post_event: PostEvent,
        settings: ActuationSettings,
        metrics: OperatorMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scaler = scaler
        self.targets = targets
        self.post_event = post_event
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rule = VerificationRule(
            settle_s=settings.settle,
            window_s=settings.window,
            min_samples=settings.min_samples,
            min_breach_s=min(180.0, settings.window / 2),
        )
        self._watched: dict[ObjectKey, _Watch] = {}

    def forget(self, key: ObjectKey) -> None:
        self._watched.pop(key, None)

    def acting(self, policy: PolicyView | None) -> bool:
        """Whether the admin's switch is on and the policy says Auto: then the decisions are actions."""
        return self.settings.enabled and policy is not None and policy.spec.mode == "Auto"

    @staticmethod
    def last_action_at(status: Mapping[str, Any]) -> float | None:
        """When the newest recorded action (not one superseded) was decided: its cooldown runs from then."""
        last = next((a for a in history_of(status) if a.phase != "Superseded"), None)
        return None if last is None else last.at

    def _watch(self, key: ObjectKey) -> _Watch:
        watch = self._watched.get(key)
        if watch is None:
            watch = self._watched[key] = _Watch(self.clock(), deque(maxlen=256))
        return watch

    # --- one step -----------------------------------------------------------------------------

    async def step(
        self,
        record: ObjectRecord,
        status: Mapping[str, Any],
        policy: PolicyView | None,
        target: kube.Target | None,
        scaling: Mapping[str, Any] | None,
        metrics_available: bool,
        sample: Sample | None,
        *,
        fresh: bool,
    ) -> Step:
        """What auto-apply does on this evaluation. `fresh`: the live loop evaluated now (else the
        view of the last step stands, and only an intent left recorded is settled); `target` and
        `sample` are None when it could not read them."""
        key = record.key
        history = history_of(status)
        mode = policy.spec.mode if policy is not None else None
        if mode != "Auto" and not history:
            self.forget(key)
            return Step(ActuationView())
        watch = self._watch(key)
        pending = bool(history) and history[0].phase == "Intended"
        if not fresh and not pending:
            if watch.view is None:
                # The first look of this process: what the status says stands until the first evaluation.
                watch.view = ActuationView(conditions_in(status), self._fields(history))
            return Step(watch.view)
        if sample is not None:
            watch.samples.append(sample)
        spec_ref = record.spec.get("targetRef") or {}
        kind, name = str(spec_ref.get("kind", "Deployment")), str(spec_ref.get("name", ""))
        if target is None and pending:
            try:
                target = kube.target_of(await self.targets.read(record.namespace, kind, name))
            except kube.KubeError as err:
                logger.warning("%s: cannot settle the recorded intent yet: %s", key, err)
        given, opened, checked = await self._gate(record, policy, target, scaling, metrics_available)
        now = self.clock()
        plan = self._intend(
            history, given, opened, pending, fresh, record, target, scaling, policy, watch, now
        )
        if plan.intent is not None:
            # The listing the gate read may be up to a ttl old: an autoscaler created since must stop
            # the action, so an action is only taken on a listing made now.
            confirmed = await self._confirmed_unowned(record, given, kind, name)
            if isinstance(confirmed, Gate):
                plan = _Plan(history, None, None, confirmed)  # nothing acts unsure; next step tries again
            elif confirmed is not None:
                given = confirmed
                plan = self._intend(
                    history, given, gate(given), pending, fresh, record, target, scaling, policy, watch, now
                )
        history, intent, blocked, opened, tally = plan
        for counter, label in tally:
            getattr(self.metrics, counter).inc(label)
        await self._conflict_event(record, watch, opened)
        desired = scaling.get("desiredReplicas") if scaling is not None else None
        if (
            not opened.open
            and mode == "Auto"
            and desired is not None
            and target
            and desired != target.replicas
        ):
            self.metrics.action_blocks.inc(opened.reason)
        if blocked is not None:
            self.metrics.action_blocks.inc(blocked[0])
        view = self._view(history, opened, blocked, autoscalers_checked=checked)
        watch.view = view
        return Step(view, intent)

    def _intend(
        self,
        history: tuple[ActionRecord, ...],
        given: GateInputs,
        opened: Gate,
        pending: bool,
        fresh: bool,
        record: ObjectRecord,
        target: kube.Target | None,
        scaling: Mapping[str, Any] | None,
        policy: PolicyView | None,
        watch: _Watch,
        now: float,
    ) -> _Plan:
        """Settle a recorded intent, verify the last action, or decide one: the first that acts."""
        spec_ref = record.spec.get("targetRef") or {}
        kind, name = str(spec_ref.get("kind", "Deployment")), str(spec_ref.get("name", ""))
        intent = None
        blocked: tuple[str, str] | None = None
        tally: list[tuple[str, str]] = []
        if pending and target is not None:
            # The intent was decided with metrics and a decision in hand; the rest of the gate must
            # still be open to retry it (a pause or another autoscaler since drops it).
            still = gate(replace(given, metrics_available=True, decided=True))
            history, intent = self._settled(history, target, still, kind, name, now, tally)
            if not fresh:
                opened = still  # no evaluation now: the gate as it stood for the intent
        if intent is None and target is not None and history and fresh:
            history, intent = self._verified(record, history, target, opened, kind, name, policy, now, tally)
        if (
            intent is None
            and fresh
            and opened.open
            and target is not None
            and scaling is not None
            and policy is not None
        ):
            intent, blocked = self._decided(
                history, target, scaling, policy.spec, watch, opened, kind, name, now
            )
            if intent is not None:
                history = intent.history
        return _Plan(history, intent, blocked, opened, tuple(tally))

    async def _confirmed_unowned(
        self, record: ObjectRecord, given: GateInputs, kind: str, name: str
    ) -> GateInputs | Gate | None:
        """None when a listing made now still finds no other autoscaler of the target; else the gate's
        inputs with those it found, or the closed gate when it cannot list them."""
        try:
            found = await self.scaler.autoscalers(record.namespace, kind, name, max_age=0.0)
        except kube.KubeError as err:
            return Gate(False, AUTOSCALERS_UNREADABLE, f"cannot list the target's autoscalers: {err}")
        return replace(given, autoscalers=found) if found else None

    async def _gate(
        self,
        record: ObjectRecord,
        policy: PolicyView | None,
        target: kube.Target | None,
        scaling: Mapping[str, Any] | None,
        metrics_available: bool,
    ) -> tuple[GateInputs, Gate, bool]:
        """The gate's inputs as found, the gate, and whether the target's autoscalers were listed."""
        ref = record.spec.get("targetRef") or {}
        kind, name = str(ref.get("kind", "Deployment")), str(ref.get("name", ""))
        mode = policy.spec.mode if policy is not None else None
        autoscalers: tuple[Autoscaler, ...] = ()
        unreadable = None
        if target is not None and mode == "Auto" and self.settings.enabled:
            try:
                autoscalers = await self.scaler.autoscalers(record.namespace, kind, name)
            except kube.KubeError as err:
                unreadable = str(err)
        given = GateInputs(
            enabled=self.settings.enabled,
            dry_run=self.settings.dry_run,
            mode=mode,
            policy_paused=bool(policy and policy.spec.paused),
            profile_paused=record.paused,
            target_paused=bool(target and target.paused),
            metrics_available=metrics_available and target is not None,
            autoscalers=autoscalers,
            decided=bool(scaling and scaling.get("desiredReplicas") is not None),
        )
        opened = gate(given)
        if unreadable is not None and (opened.open or opened.reason == "MetricsUnavailable"):
            # Unsure whether another autoscaler owns the target: acting could fight it.
            opened = Gate(
                False, AUTOSCALERS_UNREADABLE, f"cannot list the target's autoscalers: {unreadable}"
            )
        return given, opened, target is not None and unreadable is None

    def _settled(
        self,
        history: tuple[ActionRecord, ...],
        target: kube.Target,
        opened: Gate,
        kind: str,
        name: str,
        now: float,
        tally: list[tuple[str, str]],
    ) -> tuple[tuple[ActionRecord, ...], Intent | None]:
        """An intent found recorded (a crash, or a patch that failed): Applied, retried or dropped."""
        pending = history[0]
        outcome = settle(pending, target.replicas, target.generation)
        if outcome == "Applied":
            tally.append(("actions", "Applied"))
            return (replace(pending, phase="Applied"), *history[1:]), None
        # An intent older than its cooldown was decided on a demand that has passed: decide anew.
        fresh = now - pending.at <= max(pending.cooldown_s, _MIN_INTENT_AGE_S)
        if outcome == "Retry" and opened.open and not opened.dry_run and fresh:
            return history, Intent(pending, kind, name, target.resource_version, history, opened)
        if outcome == "Superseded":
            why = "the target's spec changed first"
        elif not fresh:
            why = f"recorded {now - pending.at:.0f}s ago, longer than its cooldown"
        else:
            why = f"gate closed: {opened.reason}"
        tally.append(("actions", "Superseded"))
        dropped = replace(pending, phase="Superseded", reason=f"{pending.reason}; dropped: {why}")
        return (dropped, *history[1:]), None

    def _verified(
        self,
        record: ObjectRecord,
        history: tuple[ActionRecord, ...],
        target: kube.Target,
        opened: Gate,
        kind: str,
        name: str,
        policy: PolicyView | None,
        now: float,
        tally: list[tuple[str, str]],
    ) -> tuple[tuple[ActionRecord, ...], Intent | None]:
        """The last applied action judged; a regressed scale-in rolled back (when the gate is open)."""
        last = history[0]
        if last.phase != "Applied" or last.verification is not None or last.from_replicas == last.to_replicas:
            return history, None
        slo = (record.spec.get("inference") or {}).get("slo") or {}
        action = ScaleAction(
            at=last.at,
            from_replicas=last.from_replicas,
            to_replicas=last.to_replicas,
            expected=Expected(utilization=last.predicted_utilization),
            slo=SLOLimits(ttft_p95_ms=slo.get("ttftMs"), tpot_p95_ms=slo.get("tpotMs")),
        )
        samples = list(self._watched[record.key].samples)
        judged = verify(action, samples, now, cooldown_s=last.cooldown_s, rule=self.rule)
        give_up = last.at + _GIVE_UP_WINDOWS * (self.rule.settle_s + self.rule.window_s)
        if judged.verdict == "Inconclusive" and now < give_up:
            return history, None
        tally.append(("verifications", judged.verdict))
        verdict = Verdict(judged.verdict, judged.reason, now)
        last = last.verified(verdict)
        if judged.cooldown_s is not None:
            last = replace(last, cooldown_s=judged.cooldown_s)
        if judged.stop_scale_out:
            last = replace(last, stop_scale_out_until=now + (judged.cooldown_s or last.cooldown_s))
        history = (last, *history[1:])
        if judged.verdict != "Regressed" or judged.rollback_to is None or not opened.open or policy is None:
            return history, None
        scaling = policy.spec.scaling
        to = rollback_to(scaling, target.replicas, judged.rollback_to)
        if to == target.replicas:
            return history, None
        back = ActionRecord(
            id=_action_id(now, history),
            at=now,
            from_replicas=target.replicas,
            to_replicas=to,
            reason=f"rollback: {judged.reason}",
            phase="DryRun" if opened.dry_run else "Intended",
            target_generation=target.generation,
            kind="Rollback",
            cooldown_s=judged.cooldown_s or cooldown_of(scaling, last),
        )
        history = (back, *history)[: self.settings.history]
        return history, Intent(back, kind, name, target.resource_version, history, opened)

    def _decided(
        self,
        history: tuple[ActionRecord, ...],
        target: kube.Target,
        scaling: Mapping[str, Any],
        policy: OptimizationPolicySpec,
        watch: _Watch,
        opened: Gate,
        kind: str,
        name: str,
        now: float,
    ) -> tuple[Intent | None, tuple[str, str] | None]:
        """The decision as an intent, when the recorded actions permit it."""
        desired = int(scaling["desiredReplicas"])
        last = next((a for a in history if a.phase != "Superseded"), None)
        allowed = permitted(desired, target.replicas, policy.scaling, last, now, watch.since)
        blocked = (allowed.blocked_by, allowed.message) if allowed.blocked_by else None
        if allowed.replicas == target.replicas:
            return None, blocked
        u = scaling.get("predictedUtilization")
        action = ActionRecord(
            id=_action_id(now, history),
            at=now,
            from_replicas=target.replicas,
            to_replicas=allowed.replicas,
            reason=str(scaling.get("reason", "")),
            phase="DryRun" if opened.dry_run else "Intended",
            target_generation=target.generation,
            predicted_utilization=Interval(u["p10"], u["p50"], u["p90"]) if u else None,
            cooldown_s=next_cooldown(policy.scaling, last),
        )
        if history and history[0].applied and history[0].verification is None:
            # Judged no more: what is seen from now on is the new action's doing.
            overtaken = Verdict(
                "Inconclusive", f"not judged: {action.id} followed before its window closed", now
            )
            history = (history[0].verified(overtaken), *history[1:])
        history = (action, *history)[: self.settings.history]
        return Intent(action, kind, name, target.resource_version, history, opened), blocked

    # --- after the intent is recorded ---------------------------------------------------------

    async def apply(self, record: ObjectRecord, intent: Intent) -> ActuationView:
        """Patch the recorded intent (a dry run records only); the view after it."""
        view = await self._apply(record, intent)
        self._watch(record.key).view = view
        return view

    async def _apply(self, record: ObjectRecord, intent: Intent) -> ActuationView:
        action = intent.action
        if action.phase == "DryRun":
            self.metrics.actions.inc("DryRun")
            await self._event(record, "Normal", "DryRun", action, "would scale")
            return self._view(intent.history, intent.gate, None, autoscalers_checked=True)
        ns = record.namespace
        outcome: ActionRecord
        try:
            try:
                await self.scaler.scale(
                    ns, intent.kind, intent.name, action.to_replicas, intent.resource_version
                )
            except ScaleConflict:
                # Its status moved (a rollout's progress); its spec too only if the generation did.
                target = kube.target_of(await self.targets.read(ns, intent.kind, intent.name))
                if target.generation != action.target_generation:
                    raise
                await self.scaler.scale(
                    ns, intent.kind, intent.name, action.to_replicas, target.resource_version
                )
        except ScaleConflict:
            self.metrics.actions.inc("Superseded")
            outcome = replace(
                action, phase="Superseded", reason=f"{action.reason}; dropped: the target changed"
            )
        except ScaleForbidden as err:
            self.metrics.actions.inc("Failed")
            outcome = replace(action, phase="Failed", reason=f"{action.reason}; {err}")
            history = (outcome, *intent.history[1:])
            refused = Gate(False, SCALE_FORBIDDEN, f"the API server refused the scale: {err}")
            await self._event(record, "Warning", SCALE_FORBIDDEN, outcome, "could not scale")
            return self._view(history, refused, None, autoscalers_checked=True)
        except kube.KubeError as err:
            # Left Intended: the next step settles it from the target as it then is.
            logger.warning("%s: scale %s not confirmed: %s", record.key, action.id, err)
            return self._view(intent.history, intent.gate, None, autoscalers_checked=True)
        else:
            self.metrics.actions.inc("Applied")
            self.metrics.action_patch.observe(max(self.clock() - action.at, 0.0))
            outcome = replace(action, phase="Applied")
            if action.kind == "Rollback":
                self.metrics.rollbacks.inc()
        history = (outcome, *intent.history[1:])
        if outcome.phase == "Applied":
            if action.kind == "Rollback":
                await self._event(record, "Warning", "RolledBack", outcome, "rolled back")
            else:
                reason = "ScaledOut" if action.to_replicas > action.from_replicas else "ScaledIn"
                await self._event(record, "Normal", reason, outcome, "scaled")
        return self._view(history, intent.gate, None, autoscalers_checked=True)

    async def _event(self, record: ObjectRecord, type_: str, reason: str, a: ActionRecord, verb: str) -> None:
        message = f"{verb} {a.from_replicas} -> {a.to_replicas} ({a.id}): {a.reason}"
        await self.post_event(record, type_, reason, message)

    async def _conflict_event(self, record: ObjectRecord, watch: _Watch, opened: Gate) -> None:
        """One Warning when another autoscaler of the target is first seen (not on every evaluation)."""
        reason = opened.conflict.reason if opened.conflict is not None else None
        if reason is not None and watch.last_gate != reason:
            await self.post_event(record, "Warning", reason, opened.message)
        watch.last_gate = reason

    # --- the status ---------------------------------------------------------------------------

    def _view(
        self,
        history: Sequence[ActionRecord],
        opened: Gate,
        blocked: tuple[str, str] | None,
        *,
        autoscalers_checked: bool,
    ) -> ActuationView:
        if opened.open and blocked is not None:
            reason, message = blocked
            auto = ConditionState(AUTO_APPLY, "True", reason, f"{message} ({opened.message})")
        else:
            auto = ConditionState(
                AUTO_APPLY, "True" if opened.open else "False", opened.reason, opened.message
            )
        conditions = [auto]
        if opened.conflict is not None:
            conditions.append(ConditionState(CONFLICT, "True", opened.conflict.reason, opened.message))
        elif autoscalers_checked and opened.reason not in ("RecommendOnly", "AutoApplyNotEnabled"):
            conditions.append(
                ConditionState(
                    CONFLICT, "False", NO_OTHER_AUTOSCALER, "no HPA or ScaledObject scales the target"
                )
            )
        last = history[0] if history else None
        if last is not None and last.kind == "Rollback":
            conditions.append(ConditionState(ROLLED_BACK, "True", SCALE_IN_REGRESSED, last.reason[:1024]))
        return ActuationView(tuple(conditions), self._fields(history))

    def _fields(self, history: Sequence[ActionRecord]) -> dict[str, Any]:
        if not history:
            return {}
        return {
            "lastAction": action_fields(history[0]),
            "actions": [action_fields(a) for a in history[: self.settings.history]],
        }


def _action_id(now: float, history: Sequence[ActionRecord]) -> str:
    """Unique per WorkloadProfile: the time, and a sequence when two share a second."""
    base = f"a{int(now)}"
    taken = {a.id for a in history}
    n, candidate = 1, base
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate
