"""LLM serving performance: roofline physics plus a learned correction, for TTFT and TPOT.

The predictor is the roofline of `greenmatrix.physics.llm` multiplied by ``exp`` of an XGBoost
correction trained on measured serving benchmarks. The correction sees only physics features
(roofline times, bytes, arithmetic intensity, parallelism, batch, sequence lengths, MoE
sparsity, the share of prefill stalls) and the serving engine, never a GPU or model name, so a
new GPU or model is predicted from its specs and architecture. Intervals are conformal,
calibrated on residuals of whole GPU types and whole architectures left out of training (pooled,
each grouping weighing the same); a GPU and architecture the data measured together get the
narrower interval of rows left out at random. `greenmatrix.learned.fitting.serving` fits them.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from greenmatrix.catalog.llms import ModelArch
from greenmatrix.catalog.precision import normalize_precision
from greenmatrix.errors import InvalidSpecError
from greenmatrix.interval import Interval
from greenmatrix.learned.cells import count_cell
from greenmatrix.learned.core import CorrectionModel
from greenmatrix.learned.core import models_dir as _models_dir
from greenmatrix.physics.device import GPULike
from greenmatrix.physics.llm import ServingRoofline, serving_roofline, tensor_rate
from greenmatrix.scenarios import ServingScenario

TARGETS = ("ttft", "tpot")
MODEL_NAMES = {"ttft": "serving_ttft", "tpot": "serving_tpot"}
BACKENDS = ("trtllm", "vllm", "sglang")


@dataclass(frozen=True)
class ServingPrediction:
    ttft_ms: Interval
    tpot_ms: Interval
    roofline_ttft_ms: float
    roofline_tpot_ms: float
    throughput_tokens_s: Interval  # output tokens per second for one replica
    memory_needed_gib: float  # per GPU, at this concurrency
    memory_capacity_gib: float  # per GPU
    fits: bool
    max_concurrency: int  # requests of this length one replica's memory holds
    gpus: int  # per replica
    explanation: str


# ---------------------------------------------------------------------------------------------
# Features: physics only.


def _log(x: float) -> float:
    return math.log(max(x, 1e-12))


# Fixed costs the roofline leaves out, added to it before the learned correction. Every decode step
# launches several kernels per layer and runs the engine's scheduler on the CPU (~0.08 ms per layer
# at low batch: measured TPOT sits 3-6 ms above a 2 ms roofline for 60-layer models at concurrency
# 4); a first token also pays request handling, tokenisation and scheduling (~50 ms: low-concurrency
# TTFT does not fall below that whatever the prompt length). Both values were chosen on
# leave-one-GPU-out error; with them the trees only learn the multiplicative gap.
STEP_OVERHEAD_MS_PER_LAYER = 0.08
REQUEST_OVERHEAD_MS = 50.0


def baseline_ms(s: ServingScenario, r: ServingRoofline) -> tuple[float, float]:
    """(TTFT, TPOT) the correction multiplies: the roofline plus fixed per-request/per-step costs."""
    return (
        r.ttft_ms + REQUEST_OVERHEAD_MS,
        r.tpot_ms + STEP_OVERHEAD_MS_PER_LAYER * s.model.layers,
    )


def baselines(
    scenarios: Sequence[ServingScenario], roofs: Sequence[ServingRoofline]
) -> tuple[np.ndarray, np.ndarray]:
    """`baseline_ms` of every scenario: (TTFT, TPOT) arrays."""
    pairs = np.array([baseline_ms(s, r) for s, r in zip(scenarios, roofs, strict=True)], dtype=float)
    return pairs[:, 0], pairs[:, 1]


FEATURES: tuple[str, ...] = (
    "log_roof_ttft",
    "log_roof_tpot",
    "log_prefill_compute",
    "log_prefill_memory",
    "log_prefill_comm",
    "log_prefill_queue",
    "log_decode_compute",
    "log_decode_memory",
    "log_decode_comm",
    "decode_compute_over_memory",
    "decode_kv_fraction",
    "log_decode_intensity",
    "log_prefill_intensity",
    "memory_headroom",
    "log_batch_per_rank",
    "log_concurrency",
    "log_isl",
    "log_tp",
    "log_ep",
    "log_attention_dp",
    "log_gpus",
    "moe_sparsity",
    "experts_touched_fraction",
    "attention_mla",
    "attention_hybrid",
    "backend_trtllm",
    "backend_vllm",
    "backend_sglang",
    "disaggregated",
    "log_prefill_tp",
    "log_layers",
    "log_roof_tpot_per_layer",
    "decode_workers_known",
    "log_base_ttft",
    "log_base_tpot",
    "log_ttft_overhead_share",
    "log_tpot_overhead_share",
    "log_prefill_stall_share",
)


def _row(s: ServingScenario, r: ServingRoofline) -> list[float]:
    m = s.model
    dec, pre = r.decode, r.prefill
    pf = s.prefill_parallelism or s.parallelism
    base_ttft, base_tpot = baseline_ms(s, r)
    return [
        _log(r.ttft_ms),
        _log(r.tpot_ms),
        _log(pre.compute_s * 1e3),
        _log(pre.memory_s * 1e3),
        _log(pre.comm_s * 1e3 + 1e-3),
        _log(r.prefill_queue_ms + 1e-3),
        _log(dec.compute_s * 1e3),
        _log(dec.memory_s * 1e3),
        _log(dec.comm_s * 1e3 + 1e-3),
        dec.compute_s / max(dec.memory_s, 1e-12),
        dec.kv_bytes / max(dec.bytes_read, 1.0),
        _log(dec.arithmetic_intensity),
        _log(pre.arithmetic_intensity),
        r.decode_memory.headroom,
        _log(r.batch_per_rank),
        _log(s.concurrency),
        _log(s.input_tokens),
        _log(s.tp),
        _log(s.ep),
        _log(s.attention_dp),
        _log(r.gpus),
        (m.experts_per_token / m.experts) if m.experts else 1.0,
        (r.experts_touched / m.experts) if m.experts else 1.0,
        1.0 if m.attention == "mla" else 0.0,
        1.0 if m.attention == "hybrid_linear" else 0.0,
        1.0 if s.backend == "trtllm" else 0.0,
        1.0 if s.backend == "vllm" else 0.0,
        1.0 if s.backend == "sglang" else 0.0,
        1.0 if s.disaggregated else 0.0,
        _log(pf.tp),
        _log(m.layers),
        _log(r.tpot_ms * 1e3 / m.layers),
        # Disaggregated benchmarks that omit worker counts leave the decode batch per worker a guess.
        0.0 if s.disaggregated and not s.decode_workers else 1.0,
        _log(base_ttft),
        _log(base_tpot),
        _log(base_ttft / max(r.ttft_ms, 1e-9)),
        _log(base_tpot / max(r.tpot_ms, 1e-9)),
        _log(r.prefill_stall_ms / base_tpot + 1e-3),
    ]


def roofline(s: ServingScenario) -> ServingRoofline:
    return serving_roofline(
        s.model,
        s.gpu,
        precision=s.precisions,
        input_tokens=s.input_tokens,
        output_tokens=s.output_tokens,
        concurrency=s.concurrency,
        parallelism=s.parallelism,
        prefill_parallelism=s.prefill_parallelism,
        prefill_workers=s.prefill_workers,
        decode_workers=s.decode_workers,
    )


def features(scenarios: Sequence[ServingScenario]) -> tuple[np.ndarray, list[ServingRoofline]]:
    roofs = [roofline(s) for s in scenarios]
    X = np.array([_row(s, r) for s, r in zip(scenarios, roofs, strict=True)], dtype=np.float32)
    return X.reshape(len(scenarios), len(FEATURES)), roofs


# ---------------------------------------------------------------------------------------------
# Data: measured rows to scenarios.

MAX_TOKENS = 100_000_000
_CONCURRENCY = re.compile(r"silicon_concurrency=([^;\s]*)")


def _int(row: Mapping[str, str], key: str, default: int | None = None, minimum: int = 1) -> int | None:
    return count_cell(row, key, default, minimum=minimum)


def _size(row: Mapping[str, str], key: str, minimum: int = 0) -> int:
    # Parallel sizes: blank, or 0 where exports write it for "none" (attention-DP and expert
    # sizes), mean 1.
    return max(_int(row, key, 1, minimum=minimum) or 1, 1)


def _precision_text(row: Mapping[str, str]) -> tuple[str, str | None]:
    # The row's precision names the headline format; gemm/moe quant modes refine it per weight kind.
    headline = (row.get("precision") or "").strip()
    gemm = (row.get("gemm_quant_mode") or "").strip()
    moe = (row.get("moe_quant_mode") or "").strip()
    dense = normalize_precision(gemm) or normalize_precision(headline) or "bf16"
    experts = normalize_precision(moe) or normalize_precision(headline) or dense
    return dense, experts


def scenario_from_row(row: Mapping[str, str], model: ModelArch, gpu: GPULike) -> ServingScenario:
    """A data row (the measured CSV's columns) as a scenario; raises InvalidSpecError when unusable."""
    mode = (row.get("mode") or "agg").strip().lower()
    if mode not in ("agg", "disagg"):
        raise InvalidSpecError("mode", f"{mode!r} is not a serving mode", ("agg", "disagg"))
    backend = (row.get("backend") or "").strip().lower()
    if backend not in BACKENDS:
        raise InvalidSpecError("backend", f"{backend!r} is not a known serving backend", BACKENDS)
    # Lengths are bounded by the model's context window, checked below, not by MAX_COUNT.
    isl = count_cell(row, "isl", maximum=MAX_TOKENS)
    osl = count_cell(row, "osl", maximum=MAX_TOKENS)
    if isl is None or osl is None:
        raise InvalidSpecError("isl/osl", "input and output lengths must be positive integers")
    if model.max_context and isl + osl > model.max_context:
        raise InvalidSpecError(
            "isl/osl", f"{isl} + {osl} tokens exceed {model.name}'s context window of {model.max_context:,}"
        )
    dense, experts = _precision_text(row)
    # What the row says whatever its layout (aggregated, or disaggregated into prefill and decode).
    layout = functools.partial(
        ServingScenario,
        model=model,
        gpu=gpu,
        precision=dense,
        moe_precision=experts,
        backend=backend,
        input_tokens=isl,
        output_tokens=osl,
    )
    concurrency = _concurrency(row)
    if mode == "disagg":
        d_adp = _size(row, "decode_attention_dp_size")
        workers = _int(row, "decode_num_workers")
        if concurrency is None:
            dbs = _int(row, "decode_batch_size")
            if dbs and workers:
                concurrency = dbs * workers * d_adp
        if not concurrency:
            raise InvalidSpecError("concurrency", "disaggregated row has no concurrency")
        scenario = layout(
            concurrency=concurrency,
            tp=_size(row, "decode_tp_size", minimum=1),
            ep=_size(row, "decode_moe_ep_size"),
            moe_tp=_int(row, "decode_moe_tp_size", 0, minimum=0) or 0,
            attention_dp=d_adp,
            disaggregated=True,
            prefill_tp=_size(row, "prefill_tp_size", minimum=1),
            prefill_ep=_size(row, "prefill_moe_ep_size"),
            prefill_attention_dp=_size(row, "prefill_attention_dp_size"),
            prefill_workers=_int(row, "prefill_num_workers"),
            decode_workers=workers,
        )
        return _checked(_resolve_decode_layout(scenario) if workers is None else scenario)
    tp = _size(row, "tp_size", minimum=1)
    adp = _size(row, "attention_dp_size")
    batch = _int(row, "batch_size")
    if concurrency is None and batch:
        # batch_size is per attention-DP rank in these benchmarks.
        concurrency = batch * adp
    if not concurrency:
        raise InvalidSpecError("batch_size", "aggregated row needs a batch size (concurrency)")
    ep = _size(row, "moe_ep_size")
    moe_tp = _int(row, "moe_tp_size", 0, minimum=0) or 0
    if ep > 1 and moe_tp == ep and tp == moe_tp * ep:
        # Some records multiply tp by the expert grid (tp 64 = moe_tp 8 x ep 8 on an 8-GPU
        # system); the same run elsewhere reads tp 8 x ep 8 on 8 GPUs.
        tp, moe_tp = ep, 1
    scenario = layout(
        concurrency=concurrency,
        tp=tp,
        pp=_size(row, "pp_size", minimum=1),
        ep=ep,
        moe_tp=moe_tp,
        attention_dp=adp,
    )
    return _checked(_resolve_decode_layout(scenario))


def _concurrency(row: Mapping[str, str]) -> int | None:
    """Requests in flight: a `concurrency` column if given, else the run's own record of it.

    The measured rows carry it as `silicon_concurrency=N` in `silicon_data_source`, and it is the
    truth there: 32 aggregated rows state a per-rank `batch_size` that does not multiply out to
    it. So a what-if edit of `batch_size` only counts on rows without that record, or with an
    explicit `concurrency` column, which wins over both.
    """
    explicit = _int(row, "concurrency")
    if explicit is not None:
        return explicit
    match = _CONCURRENCY.search(row.get("silicon_data_source") or "")
    if match is None:
        return None
    column = "silicon_concurrency (in silicon_data_source)"
    return count_cell({column: match.group(1)}, column)


def _checked(s: ServingScenario) -> ServingScenario:
    # Tensor parallelism splits attention heads; more ranks than heads is not a layout.
    decode = "decode_tp_size" if s.disaggregated else "tp_size"
    for field_name, tp in ((decode, s.tp), ("prefill_tp_size", s.prefill_tp)):
        if tp > s.model.heads:
            raise InvalidSpecError(
                field_name, f"{tp} exceeds {s.model.name}'s {s.model.heads} attention heads"
            )
    return s


def _resolve_decode_layout(s: ServingScenario) -> ServingScenario:
    """An MoE decode layout stated only as tp GPUs, read as the faster of TP and attention-DP.

    Some exports fold attention data parallelism into the tp column (where the same run's full
    record says tp 1 x attention-DP 32, the export says tp 32; 72-GPU NVL72 runs say tp 72 with no
    expert parallelism). For an MoE model both readings are plausible and benchmark
    configurations are tuned, so the faster roofline is taken. Against the full records of the
    same runs it lands much closer to the true layout's roofline than plain TP does (mean |log|
    gap 0.31 vs 0.69), and it cut leave-one-GPU-out TPOT error from 28.0% to 26.7%.
    """
    if not s.model.is_moe or s.tp <= 1 or s.attention_dp > 1:
        return s
    dep = replace(s, tp=1, attention_dp=s.tp, ep=s.tp, moe_tp=1)
    return min((s, dep), key=lambda c: roofline(c).decode.time_s)


def architecture_group(model: ModelArch) -> str:
    """The architecture a model's rows are grouped by (never a feature)."""
    # R1/V3/V3.1 (and NVFP4 re-publications) share one architecture: one group, so "held-out
    # model" means an architecture the correction never saw.
    return f"{model.family}:{model.layers}x{model.hidden_size}:{model.experts}"


def measured_cell(s: ServingScenario) -> str:
    """The scenario's GPU type and architecture, as the models record the pairs they were trained on."""
    return f"{s.gpu.key}|{architecture_group(s.model)}"


# ---------------------------------------------------------------------------------------------
# Runtime prediction.

_LOADED: dict[Path, ServingPredictor] = {}


def replica_throughput(s: ServingScenario, ttft_ms: float, tpot_ms: float) -> float:
    """Output tokens/s of one replica: ``concurrency`` requests in flight, each taking TTFT + (n-1) TPOT.

    The same request latency sizes replicas, so the throughput shown and the rate planned agree.
    """
    seconds = (ttft_ms + (s.output_tokens - 1) * tpot_ms) / 1e3
    return s.concurrency * s.output_tokens / max(seconds, 1e-9)


def _interval(values: np.ndarray) -> Interval:
    lo, mid, hi, point = map(float, values)
    return Interval(lo, mid, hi, None if math.isnan(point) else point)


class ServingPredictor:
    """Loaded TTFT/TPOT corrections; predicts a batch of scenarios with one XGBoost call per target."""

    def __init__(self, ttft: CorrectionModel, tpot: CorrectionModel) -> None:
        for name, model in (("ttft", ttft), ("tpot", tpot)):
            if tuple(model.feature_names) != FEATURES:
                raise ValueError(
                    f"{name} model was trained on different features; retrain with `greenmatrix train`"
                )
        self.ttft = ttft
        self.tpot = tpot
        self.measured_gpus: tuple[str, ...] = tuple(tpot.info.get("measured_gpus", ()))
        self.measured_cells: frozenset[str] = frozenset(tpot.info.get("measured_cells", ()))

    @classmethod
    def load(cls, models_dir: Path | None = None) -> ServingPredictor:
        """Load once per process and directory; later calls return the same predictor."""
        directory = Path(models_dir) if models_dir is not None else _models_dir()
        key = directory.resolve()
        if key not in _LOADED:
            _LOADED[key] = cls(
                CorrectionModel.load(directory, MODEL_NAMES["ttft"]),
                CorrectionModel.load(directory, MODEL_NAMES["tpot"]),
            )
        return _LOADED[key]

    def predict(
        self, scenarios: Sequence[ServingScenario], *, point: bool = False
    ) -> list[ServingPrediction]:
        """Intervals around the median; with ``point`` each also carries the least-relative-error
        point (`Interval.point`), which plans and SLO checks do not need and do not pay for."""
        if not scenarios:
            return []
        X, roofs = features(scenarios)
        known = np.array([measured_cell(s) in self.measured_cells for s in scenarios], dtype=bool)
        if point:
            t_lo, t_mid, t_hi, t_point = self.ttft.predict_with_point(X, known)
            p_lo, p_mid, p_hi, p_point = self.tpot.predict_with_point(X, known)
        else:
            t_lo, t_mid, t_hi = self.ttft.predict(X, known)
            p_lo, p_mid, p_hi = self.tpot.predict(X, known)
            t_point, p_point = np.full(len(X), np.nan), np.full(len(X), np.nan)
        roof_ttft = np.array([r.ttft_ms for r in roofs])
        roof_tpot = np.array([r.tpot_ms for r in roofs])
        base_ttft, base_tpot = baselines(scenarios, roofs)
        ttft = base_ttft[:, None] * np.exp(np.stack([t_lo, t_mid, t_hi, t_point], axis=1))
        tpot = base_tpot[:, None] * np.exp(np.stack([p_lo, p_mid, p_hi, p_point], axis=1))
        out: list[ServingPrediction] = []
        for i, (s, r) in enumerate(zip(scenarios, roofs, strict=True)):
            # Slow latencies give the low throughput: p10 throughput pairs with p90 latencies.
            tput = [replica_throughput(s, ttft[i, j], tpot[i, j]) for j in (2, 1, 0)]
            mem = (
                r.decode_memory
                if r.decode_memory.needed_gib_per_gpu >= r.memory.needed_gib_per_gpu
                else r.memory
            )
            out.append(
                ServingPrediction(
                    ttft_ms=_interval(ttft[i]),
                    tpot_ms=_interval(tpot[i]),
                    roofline_ttft_ms=float(roof_ttft[i]),
                    roofline_tpot_ms=float(roof_tpot[i]),
                    throughput_tokens_s=Interval(*map(float, tput)),
                    memory_needed_gib=mem.needed_gib_per_gpu,
                    memory_capacity_gib=mem.capacity_gib_per_gpu,
                    fits=r.fits,
                    max_concurrency=r.decode_memory.max_concurrency,
                    gpus=r.gpus,
                    explanation=explain(s, r) + self._evidence(s),
                )
            )
        return out

    def _evidence(self, s: ServingScenario) -> str:
        """What the prediction and its interval stand on: measurements of this GPU and model
        together, of each apart, or the GPU's datasheet only."""
        if not self.measured_gpus:
            return ""
        if s.gpu.key not in self.measured_gpus:
            return (
                f" No serving measurements of {s.gpu.key} in the training data (measured: "
                f"{', '.join(self.measured_gpus)}): predicted from its datasheet through the roofline, "
                "the case the held-out-GPU figures of models/serving.md describe."
            )
        if not self.measured_cells:
            return ""
        if measured_cell(s) in self.measured_cells:
            return (
                f" {s.gpu.key} was measured serving this architecture: the interval is the one for "
                "measured configurations (rows split at random in models/serving.md)."
            )
        return (
            f" {s.gpu.key} was measured, but never serving this architecture: the interval is the "
            "one for a new GPU or model."
        )


def explain(s: ServingScenario, r: ServingRoofline) -> str:
    """One or two sentences on what bounds decode and prefill, with the numbers behind them."""
    g = s.gpu
    p = r.precisions
    dec = r.decode
    # Name the rate the GPU actually runs at (A100 runs fp8 weights on its bf16 tensor cores).
    key_of = getattr(g, "flops_key", None)
    rate_key = (key_of(p.compute) if key_of else None) or p.compute
    rate = f"{tensor_rate(g, p.compute) / 1e12:.0f} TFLOPS {rate_key}"
    tb_s = g.memory_bandwidth_gbs / 1e3
    weights_gb = dec.weight_bytes / 1e9
    kv_gb = dec.kv_bytes / 1e9
    if dec.bound == "memory":
        kind = p.experts if s.model.is_moe else p.weights
        kv_text = f" and {kv_gb:.1f} GB of KV cache" if kv_gb >= 0.05 else ""
        first = (
            f"decode is memory-bound: {weights_gb:.1f} GB of {kind} weights{kv_text} per GPU per step "
            f"over {tb_s:.2f} TB/s"
        )
    else:
        first = (
            f"decode is compute-bound at batch {r.batch_per_rank:.0f} per rank: "
            f"{dec.flops / 1e12:.2f} TFLOP per GPU per step at {rate}"
        )
    pre = r.prefill
    second = (
        f"prefill of {s.input_tokens} tokens is {pre.bound}-bound "
        f"({pre.flops / 1e12:.1f} TFLOP per GPU at {rate})"
    )
    parts = [first, second]
    comm = dec.comm_s / max(dec.time_s, 1e-12)
    if comm >= 0.2:
        parts.append(f"tensor/expert-parallel communication is {comm:.0%} of a decode step")
    if r.prefill_stall_ms >= 0.2 * r.tpot_ms:
        parts.append(
            f"the other requests' prefills add {r.prefill_stall_ms:.1f} ms per output token "
            "(disaggregated prefill would take them off the decode GPUs)"
        )
    if not r.fits:
        need = max(r.memory.needed_gib_per_gpu, r.decode_memory.needed_gib_per_gpu)
        parts.append(f"does not fit: needs {need:.0f} GiB per GPU of {g.memory_gib:.0f} GiB")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."
