"""Advice: changes to the workload itself that the engine predicts would help.

Every gain quoted here comes from asking the predictors again about the changed workload (a whole
new plan, so a change that moves the workload to other hardware shows up), or, for the tensor
parallel degree, from predictions the plan already made for the other layouts of the same GPU.
Nothing is a rule of thumb. Three kinds:

- **Quantize**: serve at fp8, int8 or int4 when the recommended GPU runs that precision natively
  (int4 is weight-only and runs anywhere) and the serving framework supports it; int4 only when it
  gains over the 8-bit format advised beside it. Quality loss is not predicted; the advice says to
  check it.
- **ChangeTensorParallel**: another GPUs-per-replica on the same GPU type that is faster (or
  cheaper) while still feasible.
- **ChangeConcurrency**: twice or half the requests in flight per replica, when that lowers the
  cost per token while meeting the objectives, or makes an infeasible workload feasible.
"""

from __future__ import annotations

from collections.abc import Callable

from greenmatrix.api.workloadprofile import Advice, OptionPrediction, WorkloadProfileSpec
from greenmatrix.catalog import hardware
from greenmatrix.errors import GreenMatrixError
from greenmatrix.planning.result import Plan

# Quantised formats each serving framework can load (weights; fp8 also activations).
FRAMEWORK_PRECISIONS: dict[str, tuple[str, ...]] = {
    "vllm": ("fp8", "int8", "int4"),
    "sglang": ("fp8", "int8", "int4"),
    "trtllm": ("fp8", "int8", "int4", "fp4"),
    "tgi": ("fp8", "int4"),
    "onnxruntime": ("int8", "int4"),
    "triton": ("fp8", "int8", "int4"),
}
# Bits per weight, to only ever advise narrower formats.
_BITS = {"fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4, "fp4": 4}
# A change is worth advising when it moves a figure by at least this fraction.
MIN_GAIN = 0.05


Replan = Callable[[WorkloadProfileSpec], "Plan"]


def _pct(new: float, old: float) -> str:
    return f"{(new - old) / old:+.0%}"


def _best(plan: Plan) -> OptionPrediction | None:
    return plan.recommendation.predicted if plan.recommendation is not None else None


def _label(p: OptionPrediction) -> str:
    return p.gpu if p.gpus_per_replica == 0 else f"{p.gpu} x{p.gpus_per_replica}"


def _compare(
    new: OptionPrediction, old: OptionPrediction | None, *, latency_counts: bool = True
) -> str | None:
    """What `new` buys over `old` in words, or None when it is not better by MIN_GAIN on cost (or
    on TPOT, when `latency_counts`)."""
    if old is None:
        return f"makes the workload feasible: {_label(new)}" + (
            f" at ${new.usd_per_million_tokens:.3g}/1M tokens" if new.usd_per_million_tokens else ""
        )
    parts = []
    better = False
    if new.usd_per_million_tokens and old.usd_per_million_tokens:
        change = (new.usd_per_million_tokens - old.usd_per_million_tokens) / old.usd_per_million_tokens
        better |= change <= -MIN_GAIN
        if abs(change) >= 0.01:
            parts.append(
                f"{_pct(new.usd_per_million_tokens, old.usd_per_million_tokens)} $/1M tokens"
                f" ({old.usd_per_million_tokens:.3g} -> {new.usd_per_million_tokens:.3g})"
            )
        else:
            parts.append(f"same ${new.usd_per_million_tokens:.3g}/1M tokens")
    if new.tpot_ms and old.tpot_ms:
        change = (new.tpot_ms.p50 - old.tpot_ms.p50) / old.tpot_ms.p50
        better |= latency_counts and change <= -MIN_GAIN
        parts.append(f"TPOT {old.tpot_ms.p50:.3g} -> {new.tpot_ms.p50:.3g} ms")
    if new.replicas != old.replicas:
        parts.append(f"replicas {old.replicas} -> {new.replicas}")
    if (new.gpu, new.gpus_per_replica) != (old.gpu, old.gpus_per_replica):
        parts.append(f"on {_label(new)} instead of {_label(old)}")
    return ", ".join(parts) if better else None


def _with_model(spec: WorkloadProfileSpec, **update: object) -> WorkloadProfileSpec:
    return spec.model_copy(update={"model": spec.model.model_copy(update=update)})


def _with_concurrency(spec: WorkloadProfileSpec, concurrency: int) -> WorkloadProfileSpec:
    assert spec.inference is not None
    return spec.model_copy(
        update={"inference": spec.inference.model_copy(update={"concurrency": concurrency})}
    )


def _try(replan: Replan, spec: WorkloadProfileSpec) -> Plan | None:
    try:
        return replan(spec)
    except GreenMatrixError:
        return None


def quantize(spec: WorkloadProfileSpec, plan: Plan, replan: Replan) -> list[Advice]:
    """Serve at a narrower precision the GPU and the framework support."""
    current = spec.model.precision
    allowed = FRAMEWORK_PRECISIONS.get(spec.model.framework, ())
    base = _best(plan)
    native: tuple[str, ...] = ()
    if base is not None:
        spec_gpu = hardware.try_gpu(base.gpu)
        native = tuple(spec_gpu.tflops) if spec_gpu is not None else ()
    # One 8-bit format (the native one first) and weight-only int4.
    eight = [p for p in ("fp8", "int8") if p in allowed and (base is None or p in native)][:1]
    candidates = [p for p in (*eight, "int4") if p in allowed and _BITS[p] < _BITS[current]]
    out = []
    milder: OptionPrediction | None = None
    for precision in candidates:
        variant = _try(replan, _with_model(spec, precision=precision, kv_cache_precision=None))
        new = _best(variant) if variant is not None else None
        if new is None:
            continue
        gain = _compare(new, base)
        # A narrower format risks more quality: advise it only for a gain over the milder one advised.
        if gain and (milder is None or _compare(new, milder)):
            milder = new
            out.append(
                Advice(
                    action="Quantize",
                    detail=(
                        f"serve at {precision} instead of {current}"
                        f" (check the model's quality at {precision})"
                    ),
                    predicted_gain=gain,
                )
            )
    return out


def tensor_parallel(plan: Plan) -> list[Advice]:
    """Another layout of the recommended GPU that the plan predicts is faster at similar cost."""
    base = _best(plan)
    if base is None or base.tpot_ms is None:
        return []
    same = [
        e.prediction
        for e in plan.evaluated
        if e.feasible
        and e.prediction.gpu == base.gpu
        and e.prediction.gpus_per_replica != base.gpus_per_replica
        and e.prediction.tpot_ms is not None
    ]
    if not same:
        return []
    fastest = min(same, key=lambda p: p.tpot_ms.p50 if p.tpot_ms else float("inf"))
    assert fastest.tpot_ms is not None
    if fastest.tpot_ms.p50 > base.tpot_ms.p50 * (1 - MIN_GAIN):
        return []
    cost = ""
    if fastest.usd_per_million_tokens and base.usd_per_million_tokens:
        cost = f" at {_pct(fastest.usd_per_million_tokens, base.usd_per_million_tokens)} $/1M tokens"
    return [
        Advice(
            action="ChangeTensorParallel",
            detail=(
                f"run {base.gpu} with {fastest.gpus_per_replica} GPUs per replica"
                f" instead of {base.gpus_per_replica}"
            ),
            predicted_gain=(
                f"TPOT {base.tpot_ms.p50:.3g} -> {fastest.tpot_ms.p50:.3g} ms"
                f" ({_pct(fastest.tpot_ms.p50, base.tpot_ms.p50)}){cost}"
            ),
        )
    ]


def concurrency(spec: WorkloadProfileSpec, plan: Plan, replan: Replan) -> list[Advice]:
    """Twice or half the requests in flight per replica, whichever the predictors say helps."""
    assert spec.inference is not None
    now = spec.inference.concurrency
    base = _best(plan)
    out = []
    for target in (now * 2, now // 2):
        if target < 1 or target > 65536 or target == now:
            continue
        variant = _try(replan, _with_concurrency(spec, target))
        new = _best(variant) if variant is not None else None
        if new is None:
            continue
        # Concurrency trades latency for throughput: only a lower cost per token (or feasibility)
        # is worth a change; a lower latency at the same cost is what the SLO already decides.
        gain = _compare(new, base, latency_counts=False)
        if gain:
            out.append(
                Advice(
                    action="ChangeConcurrency",
                    detail=f"run {target} requests in flight per replica instead of {now}",
                    predicted_gain=gain,
                )
            )
            break
    return out


def advise(spec: WorkloadProfileSpec, plan: Plan, replan: Replan) -> list[Advice]:
    """Every piece of advice for a serving workload (training gets none yet)."""
    if spec.task != "inference":
        return []
    return [*quantize(spec, plan, replan), *tensor_parallel(plan), *concurrency(spec, plan, replan)]
