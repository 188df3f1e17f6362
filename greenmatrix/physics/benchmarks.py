"""Per-sample work of the MLPerf Inference benchmark models, and the sustained rates their rooflines use.

Each benchmark is reduced to what a roofline needs: FLOPs per sample and bytes moved per sample at
the large batches the Offline scenario runs (weights amortised over the batch, activations read and
written once per layer). Figures are order-of-magnitude physics, derived below from the published
architectures; the learned correction (greenmatrix.learned.mlperf_inference) absorbs the systematic
gap (kernel efficiency, padding removal, host overheads) as a function of physics features.

Bytes are quoted at 1 byte per element and scaled by the precision actually used, because MLPerf
NVIDIA submissions run int8/fp8 almost everywhere and fp16 for the strict-accuracy variants.

The large language models (gptj, llama2-70b, mixtral-8x7b) are modelled per sample as prefill plus
decode: FLOPs = 2 x active params x (input + output x beams) and, for decode, weights read once per
step and shared by the batch the GPU memory allows, plus each sequence's KV cache read every step.
A replica is the fewest GPUs that hold the weights, or a wider one (more tensor parallelism) when
the weights crowd out the KV cache and the wider replica's larger batch raises throughput per GPU.

Low-power parts quote tensor rates at boost clocks they cannot hold inside their TDP under a
sustained tensor load (a 70 W T4 runs its 130 TOPS int8 at well under half that). The compute
side of every roofline therefore uses a *sustained* peak: the datasheet rate, capped at TDP x the
best datasheet FLOP/s per watt of a full-power part (>= 250 W, which does run near its rated
clocks) of the same architecture, or of the same process node when the architecture has none.
That energy per operation is taken at the part's own rated clock: energy per operation goes as V^2
and voltage rises with clock, so the reference's FLOP/s per watt is scaled by (f_ref / f)^2 (an L4
rated at 2040 MHz spends 0.66 of the energy per operation of an L40S at 2520 MHz).

Activations a layer writes and the next layer reads can stay in the last-level (L2) cache instead of
going to DRAM. The memory side of a non-LLM roofline therefore uses an effective bandwidth: DRAM
bandwidth plus what L2 can hold per kernel, L2 bytes / KERNEL_SECONDS (see l2_dram_share). LLM
traffic (weights streamed once per decode step, each sequence's KV cache) is far larger than any L2
and is not re-read within a kernel, so it gets no such term.

A system that serves Server-scenario queries through an inference server (Triton) is also bound by
the rate at which the server's host path moves query payloads (served_ceiling): DLRM's ~42 KB
queries stop at 600-725k/s on 8-GPU systems whatever the GPUs, while BERT's 4.6 KB never notice.

The rooflines themselves are in `greenmatrix.physics.benchmark_roofline`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from greenmatrix.catalog.precision import flops_key
from greenmatrix.physics.device import GPULike, l2_cache_mib, peak_flops


@dataclass(frozen=True)
class BenchmarkWork:
    """What one MLPerf sample costs. LLM fields are zero for non-LLM benchmarks."""

    key: str  # canonical benchmark: "resnet50", "retinanet", "bert", "rnnt", "3d-unet", "dlrm", ...
    family: str  # task family, a learned-model feature
    flops_per_sample: float
    bytes_per_sample: float  # at 1 byte/element, excluding LLM decode traffic (computed per GPU)
    params: float
    precisions: tuple[str, ...]  # what the submissions use, most aggressive first
    note: str  # derivation and source of the figures
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    kv_bytes_per_token: float = 0.0  # at 1 byte/element, all layers, K and V
    beams: int = 1
    # One query's payload as the harness hands it over (preprocessed tensors or token ids); only an
    # inference server's copy path sees it (served_ceiling). LLM prompts: input_tokens x 4-byte ids.
    payload_bytes: float = 0.0

    @property
    def query_payload_bytes(self) -> float:
        return self.payload_bytes or 4.0 * self.input_tokens

    @property
    def is_llm(self) -> bool:
        return self.output_tokens > 0


FAMILIES: tuple[str, ...] = (
    "cnn-classification",
    "cnn-detection",
    "cnn-segmentation",
    "transformer-encoder",
    "rnn",
    "recommendation",
    "llm",
    "diffusion",
)

_INT8 = ("int8", "fp16")
# MLPerf DLRM samples aggregate 100-700 user-item pairs (mean ~270, the inference rules' query sizes).
_DLRM_PAIRS = 270
_FP8 = ("fp8", "int8", "fp16")
_FP16 = ("fp16",)

# Figures: see each note. "GMAC" = 1e9 multiply-accumulates = 2e9 FLOPs.
_BENCHMARKS: dict[str, BenchmarkWork] = {
    "resnet50": BenchmarkWork(
        "resnet50",
        "cnn-classification",
        8.2e9,
        23e6,
        25.6e6,
        _INT8,
        "ResNet-50 v1.5 at 224x224: 4.1 GMAC = 8.2 GFLOP per image (benchmark_models.csv, He et al. 2016); "
        "~11M activation elements written and read once (22 MB at int8) plus the 150 KB input.",
        payload_bytes=224 * 224 * 3,  # preprocessed int8 image
    ),
    "retinanet": BenchmarkWork(
        "retinanet",
        "cnn-detection",
        390e9,
        420e6,
        37.7e6,
        _INT8,
        "RetinaNet ResNeXt50-32x4d FPN at 800x800, OpenImages 264 classes: backbone 4.2 GMAC x (800/224)^2 "
        "= 54 GMAC, FPN ~5 GMAC, heads (4+4 3x3 256-ch convs plus a 9x264-class output conv on P3-P7) "
        "~137 GMAC; total ~195 GMAC = 390 GFLOP. ~210M activation elements, read and written.",
        payload_bytes=800 * 800 * 3,  # preprocessed int8 image
    ),
    "bert": BenchmarkWork(
        "bert",
        "transformer-encoder",
        246e9,
        300e6,
        335e6,
        _FP8,
        "BERT-Large on SQuAD at sequence 384: 2 x 302M non-embedding params x 384 tokens = 232 GFLOP "
        "plus attention 4 x 384^2 x 1024 x 24 layers = 14.5 GFLOP. ~300M activation bytes at 1 B/element "
        "with fused attention. Submissions remove padding, so the measured/roofline ratio exceeds 1/ideal.",
        payload_bytes=384 * 3 * 4,  # token ids, segment ids and mask, int32
    ),
    "rnnt": BenchmarkWork(
        "rnnt",
        "rnn",
        20e9,
        10e6,
        120e6,
        _FP16,
        "RNN-T on LibriSpeech dev-clean (~7 s utterances): encoder pre-net (~25M params) over ~233 stacked "
        "30 ms frames and post-net (~35M) over ~117 frames after time reduction, plus prediction/joint "
        "per token: ~2 x (25M x 233 + 35M x 117) = 20 GFLOP. ~10 MB of LSTM state traffic at 1 B/element.",
        payload_bytes=7 * 16000 * 4,  # ~7 s of 16 kHz fp32 audio
    ),
    "3d-unet": BenchmarkWork(
        "3d-unet",
        "cnn-segmentation",
        36e12,
        63e9,
        19e6,
        _INT8,
        "3D U-Net on KiTS19: ~0.8 TFLOP per 128^3 patch (32..320 channels, 3x3x3 convs, encoder + decoder) "
        "x ~45 sliding-window patches per volume at 50% overlap = 36 TFLOP per sample; ~1.4 GB of "
        "activations per patch (32 channels x 2.1M voxels at full resolution).",
        payload_bytes=32e6,  # a preprocessed KiTS19 volume, ~32M int8 voxels
    ),
    "dlrm": BenchmarkWork(
        "dlrm",
        "recommendation",
        4.6e6 * _DLRM_PAIRS,
        1.5e4 * _DLRM_PAIRS,
        2.3e6,
        _INT8,
        "DLRM on Criteo Terabyte: an MLPerf sample is ~270 user-item pairs (100-700); per pair bottom MLP "
        "13-512-256-128 and top MLP 479-1024-1024-512-256-1 = ~2.3M MACs = 4.6 MFLOP, 26 embedding lookups "
        "x 128 dims (3.3 KB) plus ~10 KB of activations. The tables (~24B params) are not read whole.",
        payload_bytes=_DLRM_PAIRS * (13 + 26) * 4,  # 13 dense features and 26 sparse ids per pair
    ),
    "dlrm-v2": BenchmarkWork(
        "dlrm-v2",
        "recommendation",
        32e6 * _DLRM_PAIRS,
        5e4 * _DLRM_PAIRS,
        10e6,
        _FP8,
        "DLRM-DCNv2 on Criteo 4TB multi-hot, ~270 user-item pairs per sample; per pair 3 low-rank (512) "
        "cross "
        "layers on a 3456-wide input (21 MFLOP) + top MLP 3456-1024-1024-512-256-1 (10 MFLOP) = ~32 MFLOP; "
        "214 multi-hot lookups x 128 dims = 27 KB plus ~20 KB activations.",
        payload_bytes=_DLRM_PAIRS * (13 + 214) * 4,  # 13 dense features and 214 multi-hot ids per pair
    ),
    "gptj": BenchmarkWork(
        "gptj",
        "llm",
        0.0,
        0.0,
        6.05e9,
        _FP8,
        "GPT-J 6B on CNN-DailyMail: ~800 input tokens (approximate mean), up to 128 output tokens with "
        "beam search 4 (MLPerf reference); KV cache 2 x 28 layers x 4096 = 229 KB/token at 1 B/element.",
        input_tokens=800.0,
        output_tokens=128.0,
        kv_bytes_per_token=2 * 28 * 4096,
        beams=4,
    ),
    "llama2-70b": BenchmarkWork(
        "llama2-70b",
        "llm",
        0.0,
        0.0,
        69e9,
        _FP8,
        "Llama-2-70B on OpenOrca: ~295 input and ~294 output tokens per sample (approximate means of the "
        "MLPerf subset); GQA KV cache 2 x 80 layers x 8 heads x 128 = 164 KB/token at 1 B/element.",
        input_tokens=295.0,
        output_tokens=294.0,
        kv_bytes_per_token=2 * 80 * 8 * 128,
    ),
    "mixtral-8x7b": BenchmarkWork(
        "mixtral-8x7b",
        "llm",
        0.0,
        0.0,
        46.7e9,
        _FP8,
        "Mixtral-8x7B: 46.7B params stored, 12.9B active per token (benchmark_models.csv); ~145 input and "
        "~145 output tokens (assumed); GQA KV 2 x 32 layers x 8 heads x 128 = 64 KB/token at 1 B/element. "
        "FLOPs use the active params, weight traffic the stored ones.",
        input_tokens=145.0,
        output_tokens=145.0,
        kv_bytes_per_token=2 * 32 * 8 * 128,
    ),
    "stable-diffusion-xl": BenchmarkWork(
        "stable-diffusion-xl",
        "diffusion",
        245e12,
        7e10,
        2.6e9,
        _FP8,
        "SDXL at 1024x1024: UNet ~6 TFLOP per forward at a 128x128 latent x 20 steps x 2 (classifier-free "
        "guidance) = 240 TFLOP, plus VAE decode and text encoders ~5 TFLOP; ~1.5 GB of activations per "
        "forward at 1 B/element, weights re-read each step across a batch of ~8.",
        payload_bytes=2 * 77 * 4,  # the prompt's ids for both text encoders
    ),
}

# GPT-J submissions run fp8 on Hopper/Ada and fp16 elsewhere: TensorRT-LLM's int8 (SmoothQuant) path
# does not meet the 99% accuracy target for GPT-J, so an A100 reads 2-byte weights and KV cache.
_LLM_PRECISIONS = {"gptj": ("fp8", "fp16")}

# Mixtral routes each token through 2 of 8 experts.
_ACTIVE_PARAMS = {"mixtral-8x7b": 12.9e9}

# Strict-accuracy variants (-99.9) need more precise arithmetic on some benchmarks.
_STRICT_PRECISIONS = {"bert": ("fp8", "fp16"), "dlrm": ("fp16",), "gptj": ("fp8", "fp16")}
# Strict BERT keeps fp8 only where the FP8 path holds 99.9% accuracy (Hopper/Blackwell Transformer
# Engine): Ada submissions run BERT-99.9 in fp16, at 0.40-0.47 of their BERT-99 (Hopper: 0.85-0.89).
_STRICT_FP8_FAMILIES = {"bert": frozenset({"hopper", "blackwell", "blackwell-ultra"})}

_SUFFIX = re.compile(r"-(99(?:\.9)?)$")


def active_params(w: BenchmarkWork) -> float:
    """Parameters one token passes through (an MoE routes each token through a few experts)."""
    return _ACTIVE_PARAMS.get(w.key, w.params)


def benchmark_names() -> tuple[str, ...]:
    return tuple(_BENCHMARKS)


def parse_benchmark(name: str) -> tuple[str, bool] | None:
    """Canonical benchmark key and whether it is the strict (99.9%) accuracy variant; None if unknown.

    Accepts MLPerf spellings: "resnet50", "resnet", "bert-99.9", "3d-unet-99", "dlrm-v2-99",
    "gptj-99", "llama2-70b-99.9", "mixtral-8x7b", "stable-diffusion-xl", "sdxl".
    """
    text = str(name).strip().lower()
    strict = text.endswith("-99.9")
    base = _SUFFIX.sub("", text)
    aliases = {
        "resnet": "resnet50",
        "resnet50": "resnet50",
        "resnet-50": "resnet50",
        "bert-large": "bert",
        "3d-unet": "3d-unet",
        "3dunet": "3d-unet",
        "unet3d": "3d-unet",
        "dlrmv2": "dlrm-v2",
        "dlrm-dcnv2": "dlrm-v2",
        "gpt-j": "gptj",
        "llama2-70b": "llama2-70b",
        "llama-2-70b": "llama2-70b",
        "sdxl": "stable-diffusion-xl",
    }
    base = aliases.get(base, base)
    if base not in _BENCHMARKS:
        return None
    return base, strict


def work(name: str) -> BenchmarkWork:
    """The per-sample work of a benchmark (any MLPerf spelling). Raises ValueError naming the allowed keys."""
    parsed = parse_benchmark(name)
    if parsed is None:
        raise ValueError(f"benchmark {name!r} is not known; allowed: {', '.join(_BENCHMARKS)}")
    return _BENCHMARKS[parsed[0]]


def precision_for(name: str, gpu: GPULike) -> str | None:
    """The precision optimised submissions run `name` at on `gpu`: the first it has tensor rates for."""
    parsed = parse_benchmark(name)
    if parsed is None:
        return None
    base, strict = parsed
    default = _LLM_PRECISIONS.get(base, _BENCHMARKS[base].precisions)
    prefs = _STRICT_PRECISIONS.get(base, default) if strict else default
    fp8_families = _STRICT_FP8_FAMILIES.get(base) if strict else None
    if fp8_families is not None and str(getattr(gpu, "family", "") or "").lower() not in fp8_families:
        prefs = tuple(p for p in prefs if p != "fp8")
    available = set(dict(gpu.tflops))
    for p in prefs:
        if p in available:
            return p
    # No listed native rate: fall back through the catalog's rules (fp8 -> bf16 ...).
    for p in prefs:
        if flops_key(p, available) is not None:
            return p
    return None


# Architectures without a full-power part in the catalog borrow one built on the same process node:
# Turing (T4) and Volta (V100) are both TSMC 12 nm FFN with the same tensor-core design lineage.
_PROCESS_NODE = {
    "volta": "tsmc-12nm",
    "turing": "tsmc-12nm",
    "ampere": "ampere",
    "ada-lovelace": "tsmc-4n-ada",
    "ada": "tsmc-4n-ada",
    "hopper": "tsmc-4n-hopper",
    "blackwell": "tsmc-4np",
    "blackwell-ultra": "tsmc-4np",
}
# A part with at least this TDP runs its tensor cores near the rated clock: its datasheet FLOP/s per
# watt is what the architecture sustains.
FULL_POWER_WATTS = 250.0


# Energy per operation ~ clock^CLOCK_ENERGY_EXPONENT (V^2 with V proportional to f).
CLOCK_ENERGY_EXPONENT = 2.0


def boost_mhz(gpu: GPULike) -> float:
    """Datasheet boost clock in MHz (catalog.datasheets.BOOST_CLOCK_MHZ); 0.0 when not known."""
    from greenmatrix.catalog.datasheets import BOOST_CLOCK_MHZ

    return float(BOOST_CLOCK_MHZ.get(gpu.key, 0.0))


def _fp16_per_watt(gpu: GPULike) -> float:
    rate = peak_flops(gpu, "fp16") or peak_flops(gpu, "bf16")
    tdp = float(getattr(gpu, "tdp_watts", 0.0) or 0.0)
    return rate / tdp if tdp > 0 else 0.0


@lru_cache(maxsize=64)
def _reference_parts(vendor: str, family: str) -> tuple[str, ...]:
    """Full-power parts of the architecture (or, when it has none, of its process node)."""
    from greenmatrix.catalog import hardware

    full = [
        g for g in hardware.all_gpus() if g.tdp_watts >= FULL_POWER_WATTS and str(g.vendor).lower() == vendor
    ]
    same = [g.key for g in full if str(g.family).lower() == family]
    node = _PROCESS_NODE.get(family)
    if not same and node:
        same = [g.key for g in full if _PROCESS_NODE.get(str(g.family).lower()) == node]
    return tuple(same)


def sustained_fraction(gpu: GPULike) -> float:
    """Share of the datasheet tensor rate `gpu` sustains inside its TDP (1.0 when not power-limited).

    The reference is the full-power part of its architecture (or process node) that spends the least
    energy per operation; the part can afford TDP / (its rate x that energy). Energy per operation is
    compared at the same clock: the reference's FLOP/s per W is scaled by (f_ref / f)^2 when both boost
    clocks are known (a part rated at a lower clock runs at a lower voltage), else compared as is.
    min(1, reference FLOP/s per W x clock factor / the part's own FLOP/s per W). 1.0 when the part's
    TDP, architecture or a reference part is unknown: nothing then says it is power-limited.
    """
    own = _fp16_per_watt(gpu)
    if own <= 0:
        return 1.0
    vendor = str(getattr(gpu, "vendor", "") or "").lower()
    family = str(getattr(gpu, "family", "") or "").lower()
    ref = _reference_per_watt(vendor, family, boost_mhz(gpu))
    return min(1.0, ref / own) if ref > 0 else 1.0


@lru_cache(maxsize=256)
def _reference_per_watt(vendor: str, family: str, clock_mhz: float) -> float:
    """Best reference FLOP/s per W, scaled to a part rated at `clock_mhz` (0: unknown, unscaled)."""
    from greenmatrix.catalog import hardware

    refs = [hardware.gpu(k) for k in _reference_parts(vendor, family)]
    if clock_mhz > 0 and refs and all(boost_mhz(r) > 0 for r in refs):
        return max(_fp16_per_watt(r) * (boost_mhz(r) / clock_mhz) ** CLOCK_ENERGY_EXPONENT for r in refs)
    return max((_fp16_per_watt(r) for r in refs), default=0.0)


# Duration of one layer's kernel at the large batches of the Offline/Server scenarios (tens to a few
# hundred microseconds for TensorRT conv/GEMM kernels): the time over which L2 can hold one layer's
# output for the next. Halving or doubling it moves held-out MAPE by under 0.3 points.
KERNEL_SECONDS = 100e-6


def l2_dram_share(gpu: GPULike, bandwidth: float) -> float:
    """Share of activation traffic time left when L2 serves part of it: 1 / (1 + L2 / (bw x t_k)).

    Each kernel of duration t_k = KERNEL_SECONDS can leave up to the L2 size of its output on chip
    for the next kernel, so the memory side sees an effective bandwidth bw + L2 / t_k. Large L2 on
    modest DRAM gains most (L4: 48 MiB on 300 GB/s -> 0.37; L40 0.46; H100 SXM 0.87; V100 0.94).
    """
    l2 = l2_cache_mib(gpu) * 2**20
    if bandwidth <= 0 or l2 <= 0:
        return 1.0
    return 1.0 / (1.0 + l2 / (bandwidth * KERNEL_SECONDS))


def sustained_flops(gpu: GPULike, precision: str) -> float:
    """FLOP/s `gpu` sustains at `precision` inside its TDP: peak_flops x sustained_fraction."""
    return peak_flops(gpu, precision) * sustained_fraction(gpu)


# (benchmark, scenario) -> the first MLPerf round that reports its throughput in tokens/s. v4.0 reports
# llama2-70b (and mixtral) Offline in tokens/s, Server in queries/s; from v4.1 GPT-J, Llama-2-70B and
# Mixtral report tokens/s in both scenarios. The reference data labels such rows "Samples/s" or
# "Queries/s" all the same: 8x H100 at ~21,800 "samples/s" vs ~70 queries/s in Server only makes sense
# as tokens (~294 output tokens per sample), and v4.1 GPT-J on 8x H100 reads ~19,800.
TOKEN_RESULTS_SINCE: dict[tuple[str, str], float] = {
    ("llama2-70b", "offline"): 4.0,
    ("mixtral-8x7b", "offline"): 4.0,
    ("llama2-70b", "server"): 4.1,
    ("mixtral-8x7b", "server"): 4.1,
    ("gptj", "offline"): 4.1,
    ("gptj", "server"): 4.1,
}


def results_per_sample(name: str, scenario: str, units: str, mlperf_round: float) -> float:
    """How many result units one sample counts as in `mlperf_round` (4.0 for v4.0): output tokens for
    LLM token-rate results (by their units, or by the round's rule when the units say otherwise), else 1.
    """
    w = work(name)
    if "token" in units.lower():
        return w.output_tokens or 1.0
    since = TOKEN_RESULTS_SINCE.get((w.key, scenario.strip().lower()))
    if since is not None and mlperf_round >= since:
        return w.output_tokens or 1.0
    return 1.0


# What an inference server's host path moves in query payloads: Server-scenario queries sent through
# Triton are copied by the server process from the request into device buffers. NVIDIA's Triton
# submissions plateau there: DLRM Server at 600-725k samples/s (~25-30 GB/s of payload) on 8x A100
# PCIe, 8x A100 SXM and 8x A30 systems alike, where the same systems without Triton reach 1.3-2.5M;
# ResNet-50 at ~30 GB/s. 25 GB/s is what one PCIe 4.0 x16 path achieves host-to-device; 20 or 30
# give the same held-out error within seed noise, so it is not a fitted value.
SERVED_PAYLOAD_BYTES_PER_S = 25e9


def served_ceiling(name: str) -> float:
    """Samples/s an inference server's host path can feed for benchmark `name` (inf when negligible)."""
    payload = work(name).query_payload_bytes
    return SERVED_PAYLOAD_BYTES_PER_S / payload if payload > 0 else math.inf


def system_throughput(per_gpu_samples_per_s: float, accelerators: float) -> float:
    """Roofline of a whole system: accelerators are independent replicas in Offline/Server throughput."""
    if accelerators <= 0 or not math.isfinite(accelerators):
        raise ValueError(f"accelerators must be a positive number, got {accelerators!r}")
    return per_gpu_samples_per_s * accelerators
