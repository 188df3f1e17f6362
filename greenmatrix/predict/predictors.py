"""The predictors the planner asks, loaded once per process.

`Predictors.load()` holds the learned serving model (`greenmatrix.learned.serving`) and the learned
training model (`greenmatrix.learned.training_time`), reading their files once; the caller (the CLI, the
operator) keeps the instance. When a learned model's files are missing (a checkout before
`greenmatrix train`), the same physics the model corrects is used with documented efficiency
factors and wide intervals, and `Predictors.notes` says so: a plan is still made, and says how much
to trust it.

CPU options are never given to the learned models (they were trained on GPUs): they get the plain
roofline on a generic socket (`catalog.hardware.cpu_option`), at an assumed efficiency, with a wide
interval (see `CPU_*`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from greenmatrix.catalog.hardware import CPUSpec
from greenmatrix.catalog.llms import ModelArch
from greenmatrix.catalog.precision import bytes_per_param
from greenmatrix.interval import Interval
from greenmatrix.learned.serving import ServingPrediction, replica_throughput
from greenmatrix.learned.serving import roofline as serving_roofline
from greenmatrix.physics import llm as llm_physics
from greenmatrix.physics import training as training_physics
from greenmatrix.scenarios import ServingScenario, TrainingJob

# Roofline fallback for GPUs without a learned model: the efficiency knobs llm-analysis uses
# (about 11% error in its authors' checks): 70% of peak FLOPs, 90% of peak bandwidth.
ROOFLINE_COMPUTE_EFFICIENCY = 0.7
ROOFLINE_MEMORY_EFFICIENCY = 0.9
# ... and an interval wide enough for a model that has not been corrected by any measurement.
ROOFLINE_INTERVAL = (0.8, 1.6)
# CPUs reach a much smaller and more variable share of peak on LLM inference (framework
# overheads, no fused attention); ONNX Runtime / llama.cpp reports put decode near 50-70% of
# DRAM bandwidth and prefill at 20-40% of AMX/AVX-512 peak.
CPU_COMPUTE_EFFICIENCY = 0.3
CPU_MEMORY_EFFICIENCY = 0.6
CPU_INTERVAL = (0.6, 2.5)
# Serving engines the learned model was trained on; other frameworks are predicted as vLLM, the
# closest general-purpose engine.
LEARNED_BACKENDS = ("trtllm", "vllm", "sglang")
# Full fine-tuning with mixed precision and Adam keeps bf16 weights and gradients, fp32 master
# weights and two fp32 moments: 16 bytes per parameter, sharded over all GPUs (FSDP / ZeRO-3).
TRAINING_STATE_BYTES_PER_PARAM = 16.0
TRAINING_INTERVAL = (0.75, 1.5)


class ServingModel(Protocol):
    def predict(self, scenarios: Sequence[ServingScenario]) -> list[ServingPrediction]: ...


@dataclass(frozen=True)
class TrainingEstimate:
    hours: Interval
    fits: bool
    memory_needed_gib: float  # per GPU
    explanation: str


class TrainingModel(Protocol):
    def predict(self, jobs: Sequence[TrainingJob]) -> list[TrainingEstimate]: ...


# --- CPU sockets as the serving physics sees them -------------------------------------------------


@dataclass(frozen=True)
class CPUDevice:
    """A CPU node shaped like a GPU for `physics.llm`: one "device" with the node's memory."""

    spec: CPUSpec
    memory_gib: float
    key: str = "cpu"
    intra_node_bandwidth_gbs: float = 1.0
    inter_node_bandwidth_gbs: float = 1.0
    gpus_per_node: int = 1
    tflops: Mapping[str, float] = field(default_factory=dict)

    @property
    def memory_bandwidth_gbs(self) -> float:
        return self.spec.memory_bandwidth_gbs

    def flops(self, precision: str) -> float:
        return self.spec.flops(precision)


def _scaled(x: float, band: tuple[float, float]) -> Interval:
    return Interval(x * band[0], x, x * band[1])


def _throughput(s: ServingScenario, ttft: Interval, tpot: Interval) -> Interval:
    """The slow end of the latency interval gives the low end of the throughput interval."""
    return Interval(
        replica_throughput(s, ttft.p90, tpot.p90),
        replica_throughput(s, ttft.p50, tpot.p50),
        replica_throughput(s, ttft.p10, tpot.p10),
    )


def roofline_prediction(
    s: ServingScenario,
    *,
    compute_efficiency: float,
    memory_efficiency: float,
    band: tuple[float, float],
    label: str,
) -> ServingPrediction:
    """The physics with efficiency knobs: compute parts / compute_efficiency, memory / memory_efficiency."""
    r = serving_roofline(s)

    def step_ms(step: llm_physics.Step) -> float:
        return (
            max(step.compute_s / compute_efficiency, step.memory_s / memory_efficiency) + step.comm_s
        ) * 1e3

    ttft_p50 = step_ms(r.prefill) + r.prefill_queue_ms / compute_efficiency
    tpot_p50 = step_ms(r.decode)
    ttft, tpot = _scaled(ttft_p50, band), _scaled(tpot_p50, band)
    mem = r.decode_memory
    return ServingPrediction(
        ttft_ms=ttft,
        tpot_ms=tpot,
        roofline_ttft_ms=r.ttft_ms,
        roofline_tpot_ms=r.tpot_ms,
        throughput_tokens_s=_throughput(s, ttft, tpot),
        memory_needed_gib=mem.needed_gib_per_gpu,
        memory_capacity_gib=mem.capacity_gib_per_gpu,
        fits=r.fits,
        max_concurrency=mem.max_concurrency,
        gpus=r.gpus,
        explanation=(
            f"{label}: decode {r.decode.bound}-bound, prefill {r.prefill.bound}-bound, "
            f"efficiency {compute_efficiency:.0%} compute / {memory_efficiency:.0%} memory"
        ),
    )


@dataclass(frozen=True)
class RooflineServing:
    """Serving predictions from the physics alone (no measurements behind them) at these efficiencies."""

    compute_efficiency: float = ROOFLINE_COMPUTE_EFFICIENCY
    memory_efficiency: float = ROOFLINE_MEMORY_EFFICIENCY
    band: tuple[float, float] = ROOFLINE_INTERVAL
    label: str = "roofline (no learned model)"

    def predict(self, scenarios: Sequence[ServingScenario]) -> list[ServingPrediction]:
        return [
            roofline_prediction(
                s,
                compute_efficiency=self.compute_efficiency,
                memory_efficiency=self.memory_efficiency,
                band=self.band,
                label=self.label,
            )
            for s in scenarios
        ]


# Serving on a CPU node: roofline at CPU efficiencies, wide interval.
CPU_SERVING = RooflineServing(CPU_COMPUTE_EFFICIENCY, CPU_MEMORY_EFFICIENCY, CPU_INTERVAL, "CPU roofline")


# --- training ---------------------------------------------------------------------------------------


def training_memory_gib(job: TrainingJob) -> float:
    """Per-GPU memory of a full fine-tune: sharded states + checkpointed activations + runtime."""
    states = TRAINING_STATE_BYTES_PER_PARAM * job.model.params_total / job.gpus
    # Activation checkpointing keeps each layer's input for one micro-batch sequence (2 bytes per
    # element, x2 for the recomputed layer in flight).
    activations = job.model.layers * job.sequence_length * job.model.hidden_size * 2.0 * 2.0
    return (states + activations + llm_physics.RUNTIME_OVERHEAD_BYTES) / llm_physics.GIB


def training_fits(job: TrainingJob) -> bool:
    return training_memory_gib(job) <= job.gpu.memory_gib * llm_physics.USABLE_MEMORY_FRACTION


class RooflineTraining:
    """Training time from `physics.training` (6 x params x tokens at the assumed MFU + all-reduce)."""

    def predict(self, jobs: Sequence[TrainingJob]) -> list[TrainingEstimate]:
        out = []
        for job in jobs:
            work = training_physics.transformer_work(
                float(job.model.params_active),
                job.tokens,
                name=job.model.name,
                global_batch=job.global_batch,
                sequence_length=job.sequence_length,
                precision=job.precision,
            )
            t = training_physics.training_time(work, job.gpu, job.gpus)
            hours = t.seconds / 3600.0
            out.append(
                TrainingEstimate(
                    hours=_scaled(hours, TRAINING_INTERVAL),
                    fits=training_fits(job),
                    memory_needed_gib=training_memory_gib(job),
                    explanation=(
                        f"roofline: {t.total_flops:.2g} FLOPs at {training_physics.ASSUMED_MFU:.0%} MFU,"
                        f" communication {t.comm_fraction:.0%}"
                    ),
                )
            )
        return out


# --- loading ------------------------------------------------------------------------------------


def _probe_model() -> ModelArch:
    from greenmatrix.catalog.llms import from_numbers

    return from_numbers("probe", params_total=8e9, layers=32, hidden_size=4096, heads=32, kv_heads=8)


def _learned_serving() -> tuple[ServingModel | None, str]:
    try:
        from greenmatrix.catalog.hardware import gpu
        from greenmatrix.learned.serving import ServingPredictor

        predictor = ServingPredictor.load()
        # One prediction at load: a model file from another version fails here, not in every plan.
        predictor.predict([ServingScenario(model=_probe_model(), gpu=gpu("H100-SXM-80GB"), backend="vllm")])
    except (ImportError, AttributeError, FileNotFoundError, OSError, ValueError) as err:
        return None, f"learned serving model unavailable ({type(err).__name__}: {err}); using the roofline"
    return predictor, ""


def _learned_training() -> tuple[TrainingModel | None, str]:
    try:
        from greenmatrix.catalog.hardware import gpu
        from greenmatrix.learned.training_time import TrainingPredictor

        adapter = _LearnedTraining(TrainingPredictor.load())
        probe = TrainingJob(
            gpu=gpu("H100-SXM-80GB"),
            gpus=8,
            model=_probe_model(),
            tokens=1e9,
            precision="bf16",
            sequence_length=2048,
            global_batch=None,
        )
        adapter.predict([probe])
    except (ImportError, AttributeError, FileNotFoundError, OSError, ValueError) as err:
        return None, f"learned training model unavailable ({type(err).__name__}: {err}); using the roofline"
    return adapter, ""


class _LearnedTraining:
    """The planner's view of `greenmatrix.learned.training_time.TrainingPredictor`: hours and memory.

    The learned model predicts time; memory fit (sharded states) is the planner's own estimate.
    """

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor

    def predict(self, jobs: Sequence[TrainingJob]) -> list[TrainingEstimate]:
        out = []
        for job, p in zip(jobs, self._predictor.predict(jobs), strict=True):
            out.append(
                TrainingEstimate(
                    hours=p.minutes.scaled(1 / 60.0),
                    fits=training_fits(job),
                    memory_needed_gib=training_memory_gib(job),
                    explanation=p.explanation,
                )
            )
        return out


class Predictors:
    """Every model the planner needs, loaded once; hold one instance per process."""

    def __init__(
        self,
        serving: ServingModel,
        training: TrainingModel,
        *,
        cpu: ServingModel | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        self._serving = serving
        self._training = training
        self._cpu = cpu or CPU_SERVING
        self.notes = tuple(n for n in notes if n)

    @classmethod
    def load(cls) -> Predictors:
        """The learned models (cached per process), or the physics where their files are missing."""
        return _load_once()

    @classmethod
    def roofline(cls) -> Predictors:
        """Physics only: no model files read. For tests of the decision logic and for comparison."""
        return cls(RooflineServing(), RooflineTraining(), notes=("physics only (roofline predictors)",))

    def serving(self, scenarios: Sequence[ServingScenario]) -> list[ServingPrediction]:
        """Predictions in input order; CPU scenarios go to the CPU roofline, the rest in one batch."""
        gpu_idx = [i for i, s in enumerate(scenarios) if not isinstance(s.gpu, CPUDevice)]
        cpu_idx = [i for i, s in enumerate(scenarios) if isinstance(s.gpu, CPUDevice)]
        out: list[ServingPrediction | None] = [None] * len(scenarios)
        if gpu_idx:
            for i, p in zip(gpu_idx, self._serving.predict([scenarios[i] for i in gpu_idx]), strict=True):
                out[i] = p
        if cpu_idx:
            for i, p in zip(cpu_idx, self._cpu.predict([scenarios[i] for i in cpu_idx]), strict=True):
                out[i] = p
        return [p for p in out if p is not None]

    def training(self, jobs: Sequence[TrainingJob]) -> list[TrainingEstimate]:
        return self._training.predict(jobs)


@functools.cache
def _load_once() -> Predictors:
    serving, serving_note = _learned_serving()
    training, training_note = _learned_training()
    return Predictors(
        serving or RooflineServing(),
        training or RooflineTraining(),
        notes=(serving_note, training_note),
    )


def backend_for(framework: str) -> str:
    return framework if framework in LEARNED_BACKENDS else "vllm"


def weights_gib(model: ModelArch, precision: str) -> float:
    return model.params_total * bytes_per_param(precision) / llm_physics.GIB
