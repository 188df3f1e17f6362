"""MLPerf Inference throughput: benchmark roofline x a learned efficiency, with 80% intervals.

The physics (greenmatrix.physics.benchmarks) gives each accelerator's roofline throughput at the
precision submissions use; a system's roofline is that times its accelerator count. An XGBoost
CorrectionModel learns log(measured / roofline) from physics features only (rates, bandwidth,
intensity, counts, scenario, task family, precision, software family): never the accelerator's
name, so an unseen GPU is predicted from its datasheet.

Scope: Offline and Server throughput rows (samples/s, queries/s, tokens/s). SingleStream and
MultiStream latencies and power rows are not predicted (the row gets a reason): their physics is
batch-1 latency and wall power, which this model does not cover.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greenmatrix.catalog.precision import bytes_per_param
from greenmatrix.errors import GreenMatrixError
from greenmatrix.interval import Interval
from greenmatrix.learned import novelty
from greenmatrix.learned.cells import count_cell, mlperf_round, prepare_rows
from greenmatrix.learned.core import CorrectionModel, LoadedOnce, models_dir, ratio_interval
from greenmatrix.physics import benchmark_roofline
from greenmatrix.physics import benchmarks as bench
from greenmatrix.physics.device import generation, l2_cache_mib

MODEL_NAME = "mlperf_inference"
LATENCY_MODEL_NAME = "mlperf_latency"
KINDS = ("throughput", "latency")
THROUGHPUT_SCENARIOS = ("Offline", "Server")
LATENCY_SCENARIOS = ("SingleStream", "MultiStream")
LATEST_ROUND = 4.0

FEATURES: list[str] = [
    "log10_roofline_per_gpu",  # throughput: results/s per accelerator; latency: ms per query
    "log10_intensity",
    "log10_ridge",
    "log10_peak_tflops",
    "log10_bandwidth_gbs",
    "memory_gib",
    "log10_tdp_w",
    "log10_tflops_per_watt",
    "log2_accelerators",
    "nodes",
    "mig_fraction",
    "memory_bound",
    "log10_memory_over_compute_time",
    "log2_gpus_per_replica",
    "bytes_per_element",
    "server_or_multistream",
    "strict_accuracy",
    "tensorrt",
    "reference_impl",
    "power_capped",
    "sxm",
    "generation",
    "round",
    *[f"family_{f}" for f in bench.FAMILIES],
    "log10_l2_mib_per_tbs",
    "inference_server",
]
# Batch-1 latency is dominated by launch overheads and host transfers that datasheet rates do not
# describe; with ~500 rows the full GPU description lets the trees memorise GPU types, so the
# latency model sees only the workload-side physics and a few GPU ratios.
_LATENCY_EXCLUDED = frozenset(
    {
        "memory_gib",
        "log10_tdp_w",
        "log10_peak_tflops",
        "log10_bandwidth_gbs",
        "sxm",
        "log10_tflops_per_watt",
        "generation",
        "log10_ridge",
        "log10_l2_mib_per_tbs",
    }
)
FEATURES_BY_KIND: dict[str, list[str]] = {
    "throughput": FEATURES,
    "latency": [f for f in FEATURES if f not in _LATENCY_EXCLUDED],
}
_COLUMNS = {kind: [FEATURES.index(f) for f in names] for kind, names in FEATURES_BY_KIND.items()}

_MIG = re.compile(r"\((\d+)x(\d+)g\.[\d.]+gb\s*MIG\)", re.IGNORECASE)
_WATTS = re.compile(r"\(?\s*(\d{2,4})\s*W\s*\)?", re.IGNORECASE)


@dataclass(frozen=True)
class Accelerator:
    """An MLPerf accelerator name resolved to a catalog spec, with what the name adds to it."""

    gpu: Any  # greenmatrix.catalog.hardware.GPUSpec
    mig_fraction: float  # share of each GPU's compute the MIG instances get (1.0 without MIG)
    tdp_watts: float  # the name's power limit if it states one, else the datasheet TDP
    mig_instances: int = 0  # MIG instances per GPU named ("1x1g.10gb" -> 1); 0 without MIG


def resolve_accelerator(name: str) -> tuple[Accelerator | None, str]:
    """Resolve an MLPerf accelerator name; (None, reason) when the catalog has no spec for it."""
    from greenmatrix.catalog import hardware

    raw = (name or "").strip()
    if not raw or raw.upper() in ("N/A", "-", "NONE"):
        return None, "no accelerator: CPU-only systems are not covered by the GPU roofline"
    mig = _MIG.search(raw)
    watts = _WATTS.search(raw.split("-", 1)[-1]) if "W" in raw.upper() else None
    candidates = [raw]
    stripped = re.sub(r"\([^)]*\)", " ", raw)
    stripped = re.sub(r"\b(CTS|Virtualized)\b|-0\d\b", " ", stripped, flags=re.IGNORECASE)
    candidates.append(" ".join(stripped.split()))
    key = None
    for c in candidates:
        try:
            key = hardware.normalize_gpu_name(c)
        except Exception:  # a normaliser bug must not crash a batch
            key = None
        if key:
            break
    if not key:
        return None, f"accelerator {raw!r} has no specs in the catalog"
    spec = hardware.gpu(key)
    fraction = 1.0
    if mig:
        instances, slices = int(mig.group(1)), int(mig.group(2))
        # A100/H100 have 7 compute slices, A30 has 4.
        total = 4 if "A30" in spec.key.upper() else 7
        fraction = min(1.0, instances * slices / total)
    tdp = float(spec.tdp_watts)
    if watts and "MIG" not in raw.upper():
        w = float(watts.group(1))
        if 30 <= w <= 2000:
            tdp = w
    return Accelerator(spec, fraction, tdp, int(mig.group(1)) if mig else 0), ""


def framework_is_tensorrt(framework: str) -> bool:
    """Vendor-optimised NVIDIA stack (TensorRT, the NVIDIA MLPerf containers)."""
    f = (framework or "").lower()
    return "tensorrt" in f or "trt" in f or "nvidia inference implementation" in f or "ngc mlperf" in f


_REFERENCE_MARKERS = (
    "reference",
    "onnxruntime",
    "onnx runtime",
    "pytorch",
    "tensorflow",
    "tflite",
    "c++",
    "mil)",
)


def framework_is_reference(framework: str) -> bool:
    """MLCommons reference code or a general framework without TensorRT: typically several times slower."""
    f = (framework or "").lower()
    if framework_is_tensorrt(f):
        return False
    return any(k in f for k in _REFERENCE_MARKERS)


def uses_inference_server(system_name: str, framework: str) -> bool:
    """Queries go through an inference server (Triton), not only the benchmark harness."""
    return "triton" in f"{system_name} {framework}".lower()


# The largest MLPerf node has 18 accelerators; past this a count is a typo.
MAX_PER_NODE = 1024


def round_number(version: str | None, *, strict: bool = False) -> float:
    """'v3.1' -> 3.1; the latest round when absent (or unreadable, unless ``strict``)."""
    return mlperf_round(version, LATEST_ROUND, "v4.0", strict=strict)


def _truthy(text: Any) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class Prepared:
    """A row ready for the model: features and the system roofline in the row's result units."""

    features: list[float]
    roofline: float  # whole-system roofline in the row's units: results/s, or ms per query for latency
    gpu_key: str
    bound: str
    kind: str = "throughput"  # or "latency"
    cell: str = ""  # benchmark variant and scenario, e.g. "bert-99|Offline": what a row is comparable with


def prepare(row: Mapping[str, Any]) -> tuple[Prepared | None, str]:
    """Physics and features for one CSV row (column -> text); (None, reason) if not predictable."""
    model = str(row.get("Model", "") or "").strip()
    scenario = str(row.get("Scenario", "") or "").strip()
    units = str(row.get("Units", "") or "").strip()
    parsed = bench.parse_benchmark(model)
    if parsed is None:
        return None, f"benchmark {model!r} is not modelled (known: {', '.join(bench.benchmark_names())})"
    if scenario in THROUGHPUT_SCENARIOS:
        kind = "throughput"
        if units and not re.search(r"samples|queries|tokens", units, re.IGNORECASE):
            return None, f"units {units!r} are not a throughput (power and energy rows are not predicted)"
    elif scenario in LATENCY_SCENARIOS:
        kind = "latency"
        if units and "latency" not in units.lower():
            return None, f"units {units!r} are not a latency (power and energy rows are not predicted)"
    else:
        return (
            None,
            f"scenario {scenario!r} is not one of {', '.join(THROUGHPUT_SCENARIOS + LATENCY_SCENARIOS)}",
        )
    acc, reason = resolve_accelerator(str(row.get("accelerator_model_name", "") or ""))
    if acc is None:
        return None, reason
    try:
        per_node = count_cell(row, "accelerators_per_node", maximum=MAX_PER_NODE)
        nodes = count_cell(row, "number_of_nodes", 1) or 1
        mlperf_round = round_number(row.get("version"), strict=True)
    except GreenMatrixError as err:
        return None, str(err)
    if per_node is None:
        return None, "accelerators_per_node: is empty (the accelerators per node, 1 or more)"
    n_acc = per_node * nodes
    name = str(row.get("SystemName", "") or "")
    served = uses_inference_server(name, str(row.get("framework", "") or ""))
    if acc.mig_instances == 1:
        # MLPerf "1x1g" MIG results measure one slice, even when the node lists 4 or 8 GPUs (their
        # results match the single-GPU submissions); "7x1g" on 8 GPUs is 56 slices.
        n_acc = 1
    try:
        if kind == "throughput":
            roof = benchmark_roofline.roofline(model, acc.gpu, max_gpus=n_acc)
        else:
            q = benchmark_roofline.MULTISTREAM_SAMPLES if scenario == "MultiStream" else 1
            roof = benchmark_roofline.latency_roofline(model, acc.gpu, samples_per_query=q, max_gpus=n_acc)
    except ValueError as err:  # DoesNotFitError included
        return None, str(err)
    _, strict = parsed
    if kind == "throughput":
        per_sample = bench.results_per_sample(model, scenario, units, mlperf_round)
        per_gpu = roof.samples_per_s * acc.mig_fraction * per_sample
        system = bench.system_throughput(per_gpu, n_acc)
        if served and scenario == "Server":
            # Offline batches are handed over whole; Server queries each cross the server's host path.
            system = min(system, bench.served_ceiling(model) * per_sample)
    else:
        # A query runs on one accelerator (or the replica holding the weights); a MIG slice is slower.
        per_gpu = 1000.0 / (roof.samples_per_s * acc.mig_fraction)
        system = per_gpu
    feats = _features(row, acc, roof, per_gpu, n_acc, nodes, strict, served)
    return Prepared(feats, system, acc.gpu.key, roof.bound, kind, f"{model}|{scenario}"), ""


def _features(
    row: Mapping[str, Any],
    acc: Accelerator,
    roof: benchmark_roofline.Roofline,
    per_gpu: float,
    n_acc: int,
    nodes: int,
    strict: bool,
    served: bool,
) -> list[float]:
    """The model's features (`FEATURES`) of a row whose physics `prepare` worked out."""
    scenario = str(row.get("Scenario", "") or "").strip()
    name = str(row.get("SystemName", "") or "")
    w = bench.work(str(row.get("Model", "") or "").strip())
    return [
        math.log10(per_gpu),
        math.log10(roof.intensity),
        math.log10(roof.peak_flops / roof.bandwidth),
        math.log10(roof.peak_flops / 1e12),
        math.log10(roof.bandwidth / 1e9),
        float(acc.gpu.memory_gib) * acc.mig_fraction,
        math.log10(acc.tdp_watts),
        math.log10(roof.peak_flops / 1e12 / acc.tdp_watts),
        math.log2(n_acc),
        float(nodes),
        acc.mig_fraction,
        1.0 if roof.bound == "memory" else 0.0,
        math.log10(roof.memory_time / roof.compute_time),
        math.log2(roof.gpus_per_replica),
        bytes_per_param(roof.precision),
        1.0 if scenario in ("Server", "MultiStream") else 0.0,
        1.0 if strict else 0.0,
        1.0 if framework_is_tensorrt(str(row.get("framework", "") or "")) else 0.0,
        1.0 if framework_is_reference(str(row.get("framework", "") or "")) else 0.0,
        1.0 if _truthy(row.get("has_power")) or "maxq" in name.lower() else 0.0,
        1.0 if str(getattr(acc.gpu, "form_factor", "")) in ("sxm", "superchip") else 0.0,
        generation(acc.gpu),
        round_number(row.get("version")),
        *[1.0 if w.family == f else 0.0 for f in bench.FAMILIES],
        # MiB of L2 per TB/s of DRAM bandwidth: how much traffic a large cache can keep off DRAM.
        math.log10(l2_cache_mib(acc.gpu) / (roof.bandwidth / 1e12)),
        1.0 if served else 0.0,
    ]


# --- runtime prediction -------------------------------------------------------------------------


def reference_mask(X: np.ndarray, kind: str) -> np.ndarray:
    return np.asarray(X)[:, FEATURES_BY_KIND[kind].index("reference_impl")] > 0.5


def _margin(model: CorrectionModel, X: np.ndarray, kind: str) -> np.ndarray:
    """The explicit offsets the trees were fitted around (the reference-implementation penalty)."""
    return float(model.info.get("reference_penalty", 0.0)) * reference_mask(X, kind)


def predict_log_ratio(
    model: CorrectionModel, X: np.ndarray, kind: str = "throughput"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p10, p50, p90) of log(result / roofline) for feature rows X (columns of `kind`)."""
    lo, mid, hi = model.predict(X)
    if len(mid) == 0:
        return lo, mid, hi
    m = _margin(model, X, kind)
    return lo + m, mid + m, hi + m


def gpu_vectors(keys: Iterable[str]) -> dict[str, list[float]]:
    from greenmatrix.catalog import hardware

    return {k: novelty.gpu_vector(hardware.gpu(k)) for k in sorted(set(keys))}


@dataclass(frozen=True)
class RowPrediction:
    """A row's predicted result (whole system, in its Units) or the reason it has none."""

    result: Interval | None
    roofline: float | None
    reason: str = ""


class MLPerfInferencePredictor:
    """Loads the models once; predicts batches of rows (mappings of CSV column to text).

    Throughput rows use the throughput model; latency rows the latency model when it is present
    (otherwise they get a reason).
    """

    def __init__(self, model: CorrectionModel, latency_model: CorrectionModel | None = None) -> None:
        self.models: dict[str, CorrectionModel | None] = {"throughput": model, "latency": latency_model}

    @property
    def model(self) -> CorrectionModel:
        model = self.models["throughput"]
        assert model is not None
        return model

    @classmethod
    def load(cls, directory: Path | None = None) -> MLPerfInferencePredictor:
        directory = directory or models_dir()
        try:
            latency: CorrectionModel | None = CorrectionModel.load(directory, LATENCY_MODEL_NAME)
        except FileNotFoundError:
            latency = None
        return cls(CorrectionModel.load(directory, MODEL_NAME), latency)

    def predict_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[RowPrediction]:
        prepared = prepare_rows(rows, prepare)
        out: list[RowPrediction] = [RowPrediction(None, None, reason) for _, reason in prepared]
        for kind, model in self.models.items():
            ok = [i for i, (p, _) in enumerate(prepared) if p is not None and p.kind == kind]
            if not ok:
                continue
            if model is None:
                for i in ok:
                    out[i] = RowPrediction(None, None, f"the {kind} model is not installed")
                continue
            preps = [prepared[i][0] for i in ok]
            X = np.asarray([p.features for p in preps if p is not None], dtype=np.float32)[:, _COLUMNS[kind]]
            lo, mid, hi = predict_log_ratio(model, X, kind)
            intervals = model.info.get("novelty_intervals")
            if intervals:
                iv = novelty.NoveltyIntervals.from_dict(intervals)
                keys = [p.gpu_key for p in preps if p is not None]
                vectors = gpu_vectors(keys)
                offs = {k: iv.offsets(v) for k, v in vectors.items()}
                lo = mid + np.asarray([offs[k][0] for k in keys])
                hi = mid + np.asarray([offs[k][1] for k in keys])
            for j, (i, p) in enumerate(zip(ok, preps, strict=True)):
                assert p is not None
                r = p.roofline
                out[i] = RowPrediction(ratio_interval(r, lo[j], mid[j], hi[j]), r)
        return out


# The process-wide predictor for a models directory (default: models_dir()), loaded once.
predictor = LoadedOnce(MLPerfInferencePredictor.load)


def predict_rows(rows: Sequence[Mapping[str, Any]], directory: Path | None = None) -> list[RowPrediction]:
    return predictor(directory).predict_rows(rows)
