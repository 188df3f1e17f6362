"""Training time physics: total FLOPs over the cluster's sustained rate, plus gradient communication.

    compute     = total FLOPs / (n x peak FLOP/s x MFU)        (MFU assumed, see ASSUMED_MFU)
    memory      = embedding bytes / (n x bandwidth)            (embedding-bound DLRM)
    elementwise = activation bytes / (n x bandwidth)           (norms, activations, optimizer: not on
                                                                tensor cores, so they add to compute)
    comm        = steps x ring all-reduce of the gradients     (data parallel, not overlapped; at
                                                                16 bits, or 32 for fp32/tf32 training)
    time        = max(compute, memory) + elementwise + comm
    (compute is at least steps x STEP_FLOOR_S: at thousands of GPUs the convergence-limited global
    batch leaves each GPU a few samples per step)

The elementwise term is why a GPU with 3x the tensor FLOPS but 1.7x the bandwidth (H100 vs A100)
trains CNNs ~2x faster, not 3x.

Total FLOPs are 3 x forward FLOPs per sample (forward + backward twice as large) x samples x epochs;
for transformers that is the familiar 6 x params x tokens. The MLPerf Training benchmarks are
described by their published architectures and the number of epochs or samples a typical
submission needs to reach the quality target (figures approximate, documented per benchmark).
This is also the "plain roofline" baseline the learned correction is compared against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from greenmatrix.catalog.precision import flops_key, normalize_precision
from greenmatrix.physics.device import GPULike

# A well-tuned data-parallel job sustains about 40% of dense tensor peak (MLPerf-class CNN and BERT
# runs land at 30-50%); the learned correction fixes the rest per workload family.
ASSUMED_MFU = 0.4
# Low-precision training (Transformer Engine, Megatron) casts only the matmul inputs to fp8; the
# gradients stay 16-bit beside fp32 master weights, so the all-reduce moves 16 bits per gradient
# whatever the precision, and fp32/tf32 training moves fp32 ones.
_GRADIENT_BYTES: dict[str, float] = {"fp32": 4.0, "tf32": 4.0}
_GRADIENT_BYTES_DEFAULT = 2.0
# Per-hop latency of a collective step (NVLink/NCCL ~5 us, network ~10 us), used by a tree-depth term
# so that very large jobs pay a latency floor per step rather than nothing.
_HOP_LATENCY_INTRA_S = 5e-6
_HOP_LATENCY_INTER_S = 10e-6
# No optimizer step takes less than its network's sequential depth allows however small the per-GPU
# batch (kernel launches, synchronisation, recurrence). Default for a deep CNN/transformer step;
# benchmarks override it (TrainingWork.min_step_s).
STEP_FLOOR_S = 3e-3


@dataclass(frozen=True)
class TrainingWork:
    """One training job's work, independent of hardware."""

    name: str
    family: (
        str  # "cnn-classification", "cnn-detection", "transformer", "rnn", "recommendation", "reinforcement"
    )
    forward_flops_per_sample: float
    samples: float  # samples processed in total (samples per epoch x epochs)
    grad_params: float  # parameters whose gradients are all-reduced every step
    per_gpu_batch: float  # samples per GPU per optimizer step
    precision: str = "bf16"
    bytes_per_sample: float = 0.0  # memory traffic per sample beyond what compute hides (DLRM embeddings)
    exchange_bytes_per_sample: float = 0.0  # model-parallel traffic per sample (DLRM all-to-all)
    elementwise_bytes_per_sample: float = 0.0  # activation traffic of non-tensor-core ops, fwd + bwd
    global_batch: float | None = None  # if known, overrides per_gpu_batch x n
    max_global_batch: float | None = None  # convergence limit: beyond it GPUs get smaller per-GPU batches
    min_step_s: float = STEP_FLOOR_S  # shortest possible optimizer step (sequential depth)
    note: str = ""

    @property
    def total_flops(self) -> float:
        return 3.0 * self.forward_flops_per_sample * self.samples


@dataclass(frozen=True)
class TrainingTime:
    """Roofline training time and its parts, seconds."""

    seconds: float
    compute_s: float
    memory_s: float
    comm_s: float
    elementwise_s: float
    steps: float
    total_flops: float
    peak_flops: float  # per GPU at the job's precision
    precision: str
    samples_per_step: float = 0.0
    gpus: int = 1

    @property
    def per_gpu_batch(self) -> float:
        """Samples per GPU per step."""
        return self.samples_per_step / self.gpus

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0

    @property
    def comm_fraction(self) -> float:
        return self.comm_s / self.seconds if self.seconds > 0 else 0.0


def transformer_work(
    params: float,
    tokens: float,
    *,
    name: str = "transformer",
    global_batch: float | None = None,
    sequence_length: int = 2048,
    precision: str = "bf16",
    grad_params: float | None = None,
    layers_x_hidden: float | None = None,
) -> TrainingWork:
    """A transformer job: 6 x params x tokens FLOPs, gradients all-reduced once per step.

    `params` are the parameters each token passes through (the active ones for a mixture of
    experts); `grad_params` the ones with gradients (default: `params`). `global_batch` is in
    sequences of `sequence_length` tokens; without it 1M tokens per step is assumed (a common LLM
    batch). Elementwise traffic is ~34 x layers x hidden bytes of activations per token (Korthikanti
    et al. 2022, 16-bit) written, re-read and differentiated (x3); without `layers_x_hidden` the
    usual aspect ratio hidden = 128 x layers and params = 12 x layers x hidden^2 give it.
    """
    if params <= 0 or tokens <= 0:
        raise ValueError("params and tokens must be positive")
    samples = tokens / sequence_length
    if not layers_x_hidden:
        hidden = (params * 128.0 / 12.0) ** (1.0 / 3.0)
        layers_x_hidden = hidden * hidden / 128.0
    return TrainingWork(
        name=name,
        family="transformer",
        forward_flops_per_sample=2.0 * params * sequence_length,
        samples=samples,
        grad_params=grad_params or params,
        per_gpu_batch=8.0,
        precision=precision,
        elementwise_bytes_per_sample=34.0 * 3.0 * layers_x_hidden * sequence_length,
        global_batch=global_batch if global_batch else max(1.0, 1_048_576 / sequence_length),
    )


def training_time(
    work: TrainingWork, gpu: GPULike, gpu_count: int, *, mfu: float = ASSUMED_MFU
) -> TrainingTime:
    """Roofline time to train `work` on `gpu_count` GPUs of type `gpu` with data parallelism."""
    if gpu_count < 1:
        raise ValueError(f"gpu_count must be >= 1, got {gpu_count}")
    rates = dict(gpu.tflops)
    key = flops_key(work.precision, rates)
    if key is None:
        raise ValueError(f"gpu {gpu.key!r} has no tensor rate usable for {work.precision}")
    peak = float(rates[key]) * 1e12
    n = float(gpu_count)
    compute = work.total_flops / (n * peak * mfu)
    bandwidth = n * float(gpu.memory_bandwidth_gbs) * 1e9
    memory = work.samples * work.bytes_per_sample / bandwidth
    elementwise = work.samples * work.elementwise_bytes_per_sample / bandwidth
    batch = work.global_batch or work.per_gpu_batch * n
    if work.max_global_batch:
        batch = min(batch, work.max_global_batch)
    steps = max(1.0, work.samples / batch)
    compute = max(compute, steps * work.min_step_s)
    comm = steps * allreduce_seconds(work.grad_params * gradient_bytes(work.precision), gpu, gpu_count)
    if work.exchange_bytes_per_sample and gpu_count > 1:
        comm += work.samples * work.exchange_bytes_per_sample / (n * _link_bandwidth(gpu, gpu_count))
    return TrainingTime(
        seconds=max(compute, memory) + elementwise + comm,
        compute_s=compute,
        memory_s=memory,
        comm_s=comm,
        elementwise_s=elementwise,
        steps=steps,
        total_flops=work.total_flops,
        peak_flops=peak,
        precision=key,
        samples_per_step=batch,
        gpus=gpu_count,
    )


def gradient_bytes(precision: str) -> float:
    """Bytes per gradient in the data-parallel all-reduce of a job trained at `precision`."""
    return _GRADIENT_BYTES.get(normalize_precision(precision) or "bf16", _GRADIENT_BYTES_DEFAULT)


def _link_bandwidth(gpu: GPULike, gpu_count: int) -> float:
    # A job inside one node talks over NVLink/PCIe; across nodes the slowest hop is the network.
    per_node = max(1, int(gpu.gpus_per_node))
    gbs = gpu.intra_node_bandwidth_gbs if gpu_count <= per_node else gpu.inter_node_bandwidth_gbs
    return max(float(gbs), 1.0) * 1e9


def allreduce_seconds(grad_bytes: float, gpu: GPULike, gpu_count: int) -> float:
    """Ring all-reduce of `grad_bytes` over `gpu_count` GPUs: 2(n-1)/n x bytes / link + a tree latency."""
    if gpu_count <= 1:
        return 0.0
    n = float(gpu_count)
    per_node = max(1, int(gpu.gpus_per_node))
    latency = _HOP_LATENCY_INTRA_S if gpu_count <= per_node else _HOP_LATENCY_INTER_S
    return 2.0 * (n - 1.0) / n * grad_bytes / _link_bandwidth(gpu, gpu_count) + 2.0 * math.log2(n) * latency


# --- The MLPerf Training v1.0-v2.1 benchmarks -------------------------------------------------------

# Largest global batches that still converge in the usual epochs (MLPerf hyper-parameter
# ranges, approximate).
# Elementwise (activation) traffic per sample, fwd + bwd at 16 bits: feature-map elements x 2 B x ~3
# passes. ResNet-50 ~11M elements/image -> ~130 MB; detection nets scale with pixels (800x1333 is
# ~21x 224x224); BERT-Large ~34 x layers x hidden bytes per token; RNN-T LSTM gates + joint tensor.
_IMAGENET = 1_281_167
_COCO = 118_287
_OPENIMAGES_MLPERF = 1_170_301
_LIBRISPEECH = 281_241

MLPERF_TRAINING: dict[str, TrainingWork] = {
    "resnet": TrainingWork(
        "resnet",
        "cnn-classification",
        8.2e9,
        _IMAGENET * 37.0,
        25.6e6,
        256,
        elementwise_bytes_per_sample=130e6,
        max_global_batch=65536,
        note="ResNet-50 v1.5: 8.2 GFLOP forward per 224x224 image, ImageNet 1.28M images x ~37 epochs "
        "(LARS, MLPerf v1+ convergence).",
    ),
    "bert": TrainingWork(
        "bert",
        "transformer",
        369e9,
        1.5e6,
        335e6,
        56,
        elementwise_bytes_per_sample=34.0 * 3 * 24 * 1024 * 512,
        max_global_batch=8192,
        note="BERT-Large phase-2 from the MLPerf checkpoint: 2 x 335M params x 512 tokens + attention "
        "= 369 GFLOP per sequence; ~1.5M sequences to reach 72% masked-LM accuracy (approximate).",
    ),
    "maskrcnn": TrainingWork(
        "maskrcnn",
        "cnn-detection",
        300e9,
        _COCO * 14.0,
        44e6,
        4,
        elementwise_bytes_per_sample=2.7e9,
        max_global_batch=1024,
        note="Mask R-CNN R50-FPN at ~800x1333: ~300 GFLOP forward per image; COCO 118k images x ~14 epochs.",
    ),
    "ssd-resnet34": TrainingWork(
        "ssd-resnet34",
        "cnn-detection",
        20e9,
        _COCO * 50.0,
        20e6,
        112,
        elementwise_bytes_per_sample=150e6,
        max_global_batch=2048,
        note="SSD-ResNet34 at 300x300 (MLPerf Training v1.0/v1.1 'ssd'): ~20 GFLOP forward; "
        "COCO x ~50 epochs.",
    ),
    "retinanet": TrainingWork(
        "retinanet",
        "cnn-detection",
        390e9,
        _OPENIMAGES_MLPERF * 5.0,
        37.7e6,
        32,
        elementwise_bytes_per_sample=1.7e9,
        max_global_batch=2048,
        note="RetinaNet ResNeXt50 FPN at 800x800 (MLPerf Training v2.0+ 'ssd'): 390 GFLOP forward (see "
        "physics.benchmarks); MLPerf OpenImages subset 1.17M images x ~5 epochs.",
    ),
    "rnnt": TrainingWork(
        "rnnt",
        "rnn",
        40e9,
        _LIBRISPEECH * 40.0,
        49e6,
        128,
        precision="fp16",
        elementwise_bytes_per_sample=80e6,
        max_global_batch=2048,
        # LSTMs step through ~200 frames one after another, forward and backward (CUDA graphs help).
        min_step_s=5e-3,
        note="RNN-T on LibriSpeech 960 h (281k utterances, ~12 s): ~40 GFLOP forward per utterance incl. "
        "the joint network; ~40 epochs.",
    ),
    "dlrm": TrainingWork(
        "dlrm",
        "recommendation",
        4.6e6,
        3.2e9,
        2.3e6,
        55296 / 8,
        precision="fp16",
        # Embedding rows are hot: a 55k batch touches a small fraction of distinct rows, so per-sample
        # traffic is ~1/40 of 26 x 128 x 2 B x 3 (read, gradient read and write).
        bytes_per_sample=26 * 128 * 2 * 3 / 40,
        global_batch=55296,
        # Small MLPs in one CUDA graph: sub-millisecond steps.
        min_step_s=0.5e-3,
        exchange_bytes_per_sample=26 * 128 * 2 * 2 / 40,
        note="DLRM on Criteo 1TB: 4.6 MFLOP MLPs per sample, ~0.75 epoch of 4.2B samples; embedding "
        "traffic with hot-row dedup (assumed 1/40) and a model-parallel all-to-all.",
    ),
    "minigo": TrainingWork(
        "minigo",
        "reinforcement",
        1.9e9,
        800 * 250 * 2048 * 20 / 3.0,
        2.4e6,
        4096,
        note="MiniGo 19x19: self-play dominates: ~1.9 GFLOP per network evaluation x 800 visits x 250 "
        "moves x ~2048 games x ~20 iterations (order of magnitude only; counted as forward-only work).",
    ),
}


def mlperf_training_work(model_id: str, version: str | float | None = None) -> TrainingWork | None:
    """The work of an MLPerf Training benchmark by its Model_ID; None if unknown.

    'ssd' was SSD-ResNet34 on COCO until v1.1 and RetinaNet on OpenImages from v2.0: without a
    version the current (RetinaNet) one is assumed.
    """
    key = str(model_id).strip().lower()
    if key == "ssd":
        v = _version_number(version)
        return MLPERF_TRAINING["ssd-resnet34" if v is not None and v < 2.0 else "retinanet"]
    if key in ("resnet50", "resnet-50"):
        key = "resnet"
    if key in ("bert-large",):
        key = "bert"
    return MLPERF_TRAINING.get(key)


def _version_number(version: str | float | None) -> float | None:
    if version is None:
        return None
    text = str(version).strip().lstrip("vV")
    try:
        return float(text)
    except ValueError:
        return None
