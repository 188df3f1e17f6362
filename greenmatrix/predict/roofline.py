"""Predictions from the physics alone, for what the learned models do not cover: a GPU when the model
files are missing (a checkout before `greenmatrix train`), every CPU socket (the models were trained on
GPUs), and training memory. Each carries the efficiency knobs it assumes and a wide interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from greenmatrix.catalog.hardware import CPUSpec
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
# Full fine-tuning with mixed precision and Adam keeps bf16 weights and gradients, fp32 master
# weights and two fp32 moments: 16 bytes per parameter, sharded over all GPUs (FSDP / ZeRO-3).
TRAINING_STATE_BYTES_PER_PARAM = 16.0
TRAINING_INTERVAL = (0.75, 1.5)


@dataclass(frozen=True)
class TrainingEstimate:
    hours: Interval
    fits: bool
    memory_needed_gib: float  # per GPU
    explanation: str


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
