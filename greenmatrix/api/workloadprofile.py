"""WorkloadProfile: an AI workload as its owner describes it, and what GreenMatrix says about it.

The spec is what a user knows (the model, its precision and serving stack, the traffic or the
training run, the objectives it must meet); the status is what the operator derives (the
hardware in the cluster that could run it, and from issue 4 on, a ranked recommendation).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from greenmatrix.api.live import (
    AnomalyReport,
    DemandForecast,
    HardwareReview,
    ObservedFigures,
    ReplicaScaling,
    ScaleActionRecord,
)
from greenmatrix.api.meta import Condition, Interval, Schema, TargetRef, cel, cel_rules

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"]
Framework = Literal["vllm", "sglang", "trtllm", "tgi", "triton", "pytorch", "jax", "onnxruntime", "other"]

# GPU names in specs are catalog keys or any alias the catalog normalises (GFD product labels,
# MLPerf names, Karpenter names); the schema can only bound their shape, the operator checks them.
GPUName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()-]*$")]
RegionName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]

# With one output token there is no second token, so no time between tokens to bound.
SINGLE_TOKEN_TPOT_MESSAGE = (
    "slo.tpotMs needs outputTokens of 2 or more (with one output token there is no time per output"
    " token); bound ttftMs or p95LatencyMs instead"
)

# Grouped-query attention shares each key/value head among an equal number of query heads.
KV_HEADS_MESSAGE = (
    "kvHeads must divide attentionHeads (each key/value head serves the same number of query heads)"
)
# Each head is taken to span hiddenSize / attentionHeads elements, so more heads than elements leaves
# heads of zero width and no KV cache. Divisibility is not required: real models set head_dim apart
# (Qwen3.5-27B: hiddenSize 5120, 24 heads of 256).
HEADS_MESSAGE = "attentionHeads must not exceed hiddenSize (each head spans hiddenSize / attentionHeads)"


class Architecture(Schema):
    """Architecture numbers of a model that is not in the catalog (as in its Hugging Face config.json)."""

    parameters: Annotated[float, Field(gt=0, le=1e13)]
    """Total parameter count, e.g. 8.03e9."""
    layers: Annotated[int, Field(ge=1, le=1024)]
    """Number of transformer layers (num_hidden_layers)."""
    hidden_size: Annotated[int, Field(ge=64, le=65536)]
    """Hidden size (hidden_size / d_model)."""
    attention_heads: Annotated[int, Field(ge=1, le=1024)]
    """Number of attention (query) heads."""
    kv_heads: Annotated[int | None, Field(ge=1, le=1024)] = None
    """Key/value heads (grouped-query attention), a divisor of attentionHeads; defaults to attentionHeads."""
    head_dim: Annotated[int | None, Field(ge=1, le=4096)] = None
    """Width of one attention head (head_dim); defaults to hiddenSize / attentionHeads. Sizes the KV
    cache and attention, so give it when config.json does (Qwen3 and Gemma heads are wider)."""
    intermediate_size: Annotated[int | None, Field(ge=1, le=1048576)] = None
    """Feed-forward inner size; defaults to 4 x hiddenSize (per expert for mixture-of-experts models)."""
    vocab_size: Annotated[int | None, Field(ge=1, le=4194304)] = None
    """Vocabulary size; defaults to 32000."""
    experts: Annotated[int, Field(ge=0, le=4096)] = 0
    """Routed experts per MoE layer; 0 for a dense model."""
    active_experts: Annotated[int, Field(ge=0, le=256)] = 0
    """Experts each token is routed to (num_experts_per_tok); required when experts > 0."""
    active_parameters: Annotated[float | None, Field(gt=0, le=1e13)] = None
    """Parameters used per token (MoE); derived from the other numbers when omitted."""

    model_config = cel_rules(
        # kvHeads below 1 is the minimum's to report: the modulus would fail the rule with
        # "modulus by zero evaluating rule" at the architecture, a second error pydantic lacks.
        cel(
            "!has(self.kvHeads) || self.kvHeads < 1 || self.attentionHeads % self.kvHeads == 0",
            KV_HEADS_MESSAGE,
            ".kvHeads",
        ),
        cel("self.attentionHeads <= self.hiddenSize", HEADS_MESSAGE, ".attentionHeads"),
        cel(
            "self.experts == 0 ? self.activeExperts == 0"
            " : (self.activeExperts >= 1 && self.activeExperts <= self.experts)",
            "activeExperts must be between 1 and experts for a mixture-of-experts model,"
            " and 0 for a dense one",
            ".activeExperts",
        ),
        cel(
            "!has(self.activeParameters) || self.activeParameters <= self.parameters",
            "activeParameters must not exceed parameters",
            ".activeParameters",
        ),
    )

    # The validators below restate the CEL rules for manifests read without an API server (the CLI);
    # tests/lab/test_crd_agreement.py feeds the same manifests to both and checks they agree.
    @model_validator(mode="after")
    def _consistent(self) -> Architecture:
        if self.kv_heads is not None and self.attention_heads % self.kv_heads:
            raise ValueError(KV_HEADS_MESSAGE)
        if self.attention_heads > self.hidden_size:
            raise ValueError(HEADS_MESSAGE)
        if self.experts == 0 and self.active_experts != 0:
            raise ValueError("activeExperts must be 0 for a dense model (experts: 0)")
        if self.experts > 0 and not 1 <= self.active_experts <= self.experts:
            raise ValueError("activeExperts must be between 1 and experts for a mixture-of-experts model")
        if self.active_parameters is not None and self.active_parameters > self.parameters:
            raise ValueError("activeParameters must not exceed parameters")
        return self


class ModelSpec(Schema):
    """The model: a catalog name or architecture numbers, and how it is run."""

    name: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    """Catalog name of the model, e.g. meta-llama/Llama-3.1-8B-Instruct (`greenmatrix models` lists them)."""
    architecture: Architecture | None = None
    """Architecture numbers, for a model the catalog does not know. Exactly one of name or architecture."""
    precision: Precision = "bf16"
    """Numeric precision of the weights as served or trained."""
    kv_cache_precision: Precision | None = None
    """Precision of the KV cache (inference). Default: fp8 for fp8, int8 and fp4 weights, bf16 for
    bf16, fp16 and weight-only int4, fp32 for fp32 and tf32 (what serving engines pick for them)."""
    framework: Framework = "vllm"
    """Serving backend or training framework."""

    model_config = cel_rules(
        cel(
            "has(self.name) != has(self.architecture)",
            "set exactly one of model.name (a catalog model) or model.architecture (its numbers)",
        )
    )

    @model_validator(mode="after")
    def _one_model(self) -> ModelSpec:
        if (self.name is None) == (self.architecture is None):
            raise ValueError(
                "set exactly one of model.name (a catalog model) or model.architecture (its numbers)"
            )
        return self


class ServingSLO(Schema):
    """Service-level objectives of an inference workload. Every field is optional; all given must hold."""

    ttft_ms: Annotated[float | None, Field(gt=0, le=600000)] = None
    """Maximum time to first token, in milliseconds (p50 prediction must be below it)."""
    tpot_ms: Annotated[float | None, Field(gt=0, le=60000)] = None
    """Maximum time per output token after the first, in milliseconds."""
    p95_latency_ms: Annotated[float | None, Field(gt=0, le=3600000)] = None
    """Maximum end-to-end request latency at the 95th percentile, in milliseconds. Planning checks a
    typical request's predicted latency (p50) against it, as for the other objectives; the live p95
    is what the serving framework's metrics report once deployed."""
    min_throughput_tokens_per_second: Annotated[float | None, Field(gt=0, le=1e9)] = None
    """Minimum generated tokens per second across all replicas."""


class InferenceSpec(Schema):
    """The traffic an inference workload serves."""

    input_tokens: Annotated[int, Field(ge=1, le=2097152)] = 1024
    """Typical prompt (input) length in tokens."""
    output_tokens: Annotated[int, Field(ge=1, le=262144)] = 256
    """Typical generated (output) length in tokens."""
    concurrency: Annotated[int, Field(ge=1, le=65536)] = 16
    """Requests in flight per replica (the serving engine's batch)."""
    requests_per_second: Annotated[float | None, Field(gt=0, le=1e7)] = None
    """Expected request rate across all replicas; sizes the replica count. Omit it when unknown:
    replicas then follow the SLOs and the policy's minimum, and per-token cost assumes each replica
    runs at the policy's targetUtilization. Zero is refused (omit the field instead): with no traffic
    there is no token to price."""
    slo: ServingSLO | None = None
    """Objectives the recommendation must meet."""

    model_config = cel_rules(
        cel(
            "self.outputTokens >= 2 || !has(self.slo) || !has(self.slo.tpotMs)",
            SINGLE_TOKEN_TPOT_MESSAGE,
            ".slo.tpotMs",
        )
    )

    @model_validator(mode="after")
    def _tpot_needs_two_tokens(self) -> InferenceSpec:
        if self.output_tokens < 2 and self.slo is not None and self.slo.tpot_ms is not None:
            raise ValueError(SINGLE_TOKEN_TPOT_MESSAGE)
        return self


class TrainingSpec(Schema):
    """A training or fine-tuning run."""

    tokens: Annotated[float | None, Field(gt=0, le=1e15)] = None
    """Tokens processed per epoch (language models). Exactly one of tokens or samples."""
    samples: Annotated[float | None, Field(gt=0, le=1e13)] = None
    """Samples processed per epoch (other models)."""
    epochs: Annotated[float, Field(gt=0, le=10000)] = 1
    """Passes over the data."""
    global_batch_size: Annotated[int | None, Field(ge=1, le=16777216)] = None
    """Global batch size in sequences or samples; bounds data-parallel width."""
    sequence_length: Annotated[int | None, Field(ge=1, le=2097152)] = None
    """Sequence length in tokens (language models)."""
    deadline_hours: Annotated[float | None, Field(gt=0, le=8760)] = None
    """The run must finish within this many hours."""

    model_config = cel_rules(
        cel(
            "has(self.tokens) != has(self.samples)",
            "set exactly one of training.tokens or training.samples",
        )
    )

    @model_validator(mode="after")
    def _one_amount(self) -> TrainingSpec:
        if (self.tokens is None) == (self.samples is None):
            raise ValueError("set exactly one of training.tokens or training.samples")
        return self


class HardwareSpec(Schema):
    """Which hardware may be considered. Omitted fields mean no restriction."""

    allowed_gpus: list[GPUName] | None = Field(default=None, max_length=64)
    """GPU types that may be recommended (catalog keys or node-label names, e.g. H100-SXM-80GB, NVIDIA-L4)."""
    excluded_gpus: list[GPUName] | None = Field(default=None, max_length=64)
    """GPU types never to recommend."""
    allow_cpu: bool = True
    """Whether CPU-only nodes may be recommended for small models."""
    min_gpus_per_replica: Annotated[int, Field(ge=1, le=64)] = 1
    """Fewest GPUs in one replica."""
    max_gpus_per_replica: Annotated[int, Field(ge=1, le=64)] = 8
    """Most GPUs in one replica (tensor x pipeline parallel degree)."""
    regions: list[RegionName] | None = Field(default=None, max_length=64)
    """Regions (topology.kubernetes.io/region) whose nodes may be used."""

    model_config = cel_rules(
        cel(
            "self.minGpusPerReplica <= self.maxGpusPerReplica",
            "minGpusPerReplica must not exceed maxGpusPerReplica",
            ".minGpusPerReplica",
        )
    )

    @model_validator(mode="after")
    def _gpu_bounds(self) -> HardwareSpec:
        if self.min_gpus_per_replica > self.max_gpus_per_replica:
            raise ValueError("minGpusPerReplica must not exceed maxGpusPerReplica")
        return self


class MetricsSpec(Schema):
    """PromQL overrides for this workload's live metrics (the defaults fit vLLM and DCGM exporter)."""

    request_rate: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    """Requests per second served, e.g. sum(rate(vllm:request_success_total{namespace="ml"}[5m]))."""
    ttft_p95_seconds: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    """95th percentile time to first token in seconds."""
    tpot_p95_seconds: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    """95th percentile time per output token in seconds."""
    gpu_utilization: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    """Mean GPU utilisation in percent (DCGM_FI_DEV_GPU_UTIL)."""
    power_watts: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    """Power drawn by the workload's GPUs in watts (DCGM_FI_DEV_POWER_USAGE)."""


class WorkloadProfileSpec(Schema):
    """Desired state of a WorkloadProfile: the workload GreenMatrix should place and size."""

    model: ModelSpec
    """The model and how it is run."""
    task: Literal["inference", "training"]
    """Whether the workload serves requests or trains."""
    inference: InferenceSpec | None = None
    """Traffic and objectives; required when task is inference."""
    training: TrainingSpec | None = None
    """The run; required when task is training."""
    target_ref: TargetRef | None = None
    """The Deployment or StatefulSet that runs this workload, if any."""
    hardware: HardwareSpec | None = None
    """Restrictions on the hardware considered."""
    metrics: MetricsSpec | None = None
    """PromQL overrides for live metrics."""

    model_config = cel_rules(
        cel(
            "self.task == 'inference' ? (has(self.inference) && !has(self.training))"
            " : (has(self.training) && !has(self.inference))",
            "task inference needs spec.inference and no spec.training;"
            " task training needs spec.training and no spec.inference",
        ),
    )

    @model_validator(mode="after")
    def _task_shape(self) -> WorkloadProfileSpec:
        if self.task == "inference" and (self.inference is None or self.training is not None):
            raise ValueError("task inference needs spec.inference and no spec.training")
        if self.task == "training" and (self.training is None or self.inference is not None):
            raise ValueError("task training needs spec.training and no spec.inference")
        return self


class GPUInventory(Schema):
    """GPUs of one type found on the cluster's nodes."""

    gpu: str
    """Catalog key of the GPU type, or the raw product label when the catalog does not know it."""
    product: str
    """The node label value it was read from (nvidia.com/gpu.product or Karpenter's instance-gpu-name)."""
    known: bool
    """Whether the catalog has specifications for this GPU type."""
    nodes: int
    """Ready, schedulable nodes with this GPU type."""
    gpus_per_node: int
    """Largest allocatable nvidia.com/gpu on one of those nodes."""
    total_gpus: int
    """Allocatable GPUs of this type summed over those nodes."""
    regions: list[str] | None = None
    """Regions the nodes are in."""


class CPUInventory(Schema):
    """CPU-only nodes of one kind found on the cluster."""

    vendor: str
    """CPU vendor from Node Feature Discovery (Intel, AMD) or Unknown."""
    avx512: bool
    """Whether the nodes report AVX-512."""
    amx: bool
    """Whether the nodes report AMX (bf16 matrix units)."""
    nodes: int
    """Ready, schedulable nodes of this kind."""
    cores_per_node: int
    """Largest allocatable CPU count on one of those nodes."""


class Inventory(Schema):
    """The hardware in the cluster that matches this workload's hardware restrictions."""

    gpus: list[GPUInventory] | None = None
    """GPU types, most capable first."""
    cpus: list[CPUInventory] | None = None
    """CPU-only node kinds."""
    matched_nodes: int = 0
    """Nodes that pass the workload's restrictions."""
    total_nodes: int = 0
    """Nodes the operator sees."""


class OptionPrediction(Schema):
    """One hardware option for this workload and what the engine predicts for it."""

    gpu: str
    """Catalog key of the GPU type, or cpu/<vendor> for CPU-only nodes."""
    gpus_per_replica: int
    """GPUs in one replica (tensor parallel degree), or in one pod of a training job; 0 on CPU."""
    replicas: int
    """Replicas needed for the expected load (inference, within the policy's scaling bounds), or pods of
    the training job (one per node when a job spans nodes; the scaling bounds do not apply)."""
    in_cluster: bool
    """Whether the cluster has nodes with this hardware that match the restrictions."""
    feasible: bool
    """Whether the option fits in memory and meets every objective and constraint."""
    ttft_ms: Interval | None = None
    """Predicted time to first token, in milliseconds."""
    tpot_ms: Interval | None = None
    """Predicted time per output token, in milliseconds (absent with one output token)."""
    request_latency_ms: Interval | None = None
    """Predicted end-to-end latency of a typical request, in milliseconds."""
    throughput_tokens_per_second: Interval | None = None
    """Predicted generated tokens per second of one replica."""
    training_hours: Interval | None = None
    """Predicted wall-clock hours of the training run."""
    usd_per_hour: float | None = None
    """Price of all replicas per hour, in US dollars (on-demand list price)."""
    usd_per_million_tokens: float | None = None
    """Cost of a million generated tokens at the planned utilisation, in US dollars."""
    usd_per_run: float | None = None
    """Cost of the training run, in US dollars."""
    watts: float | None = None
    """Predicted power of all replicas, in watts."""
    joules_per_token: float | None = None
    """Predicted energy per generated token, in joules."""
    grams_co2_per_million_tokens: float | None = None
    """Predicted emissions per million generated tokens, in gCO2eq."""
    grams_co2_per_run: float | None = None
    """Predicted emissions of the training run, in gCO2eq."""
    grams_co2_per_hour: float | None = None
    """Predicted emissions of all replicas (or the training job) per hour, in gCO2eq."""
    score: float | None = None
    """TOPSIS closeness to the ideal under the applied weights, 0 to 1 (higher is better)."""
    pareto: bool = False
    """Whether no other option is at least as good on every objective and better on one."""
    slo_margin: bool | None = None
    """Whether the objectives also hold at the pessimistic (p90) prediction; unset without objectives."""
    reason: str = ""
    """Why the option is infeasible, or what limits it."""


class Advice(Schema):
    """A change to the workload itself that the engine predicts would help."""

    action: str
    """What to change, e.g. Quantize, ChangeTensorParallel, ChangeConcurrency."""
    detail: str
    """The change in words, e.g. serve at fp8 instead of bf16."""
    predicted_gain: str
    """What it buys, e.g. -38% cost per million tokens at equal TPOT."""


class Recommendation(Schema):
    """The option GreenMatrix recommends among the cluster's hardware, and how to run on it."""

    gpu: str
    """Catalog key of the GPU type, or cpu/<vendor>."""
    gpus_per_replica: int
    """GPUs per replica (tensor parallel degree), or per pod of a training job; 0 on CPU."""
    replicas: int
    """Replicas for the expected load (inference), or pods of the training job."""
    latency: str
    """The headline latency, for `kubectl get`: e.g. "TPOT 21ms" or "run 7.5h"."""
    usd_per_million_tokens: float | None = None
    """Cost per million generated tokens, in US dollars (inference)."""
    node_selector: dict[str, str] | None = None
    """Node labels a pod needs to land on this hardware."""
    resources: dict[str, dict[str, str]] | None = None
    """Container resources (requests and limits) per replica, e.g. nvidia.com/gpu."""
    predicted: OptionPrediction
    """Predictions for the recommended option."""
    explanation: str
    """One line on why this option won."""
    basis: str | None = None
    """What the predicted numbers rest on: what bounds the workload on this hardware (memory
    bandwidth, compute, communication) and the quantities behind it."""


class WorkloadProfileStatus(Schema):
    """Observed state of a WorkloadProfile, written by the operator only."""

    observed_generation: Annotated[int | None, Field(ge=0)] = None
    """The metadata.generation the status describes."""
    conditions: list[Condition] | None = None
    """Ready, InvalidSpec, RecommendationProvided; with live metrics MetricsAvailable and ScalingLimited;
    under an Auto policy AutoApply, Conflict and RolledBack; for kstatus, Stalled while Ready is False
    and Reconciling while an action is in flight (both present only while True)."""
    inventory: Inventory | None = None
    """Hardware in the cluster that matches the workload's restrictions."""
    recommendation: Recommendation | None = None
    """The recommended option among the cluster's hardware."""
    alternatives: list[OptionPrediction] | None = Field(default=None, max_length=10)
    """The next best options in the cluster, best first."""
    better_outside_cluster: list[OptionPrediction] | None = Field(default=None, max_length=5)
    """Catalog options the cluster lacks that would rank above the recommendation."""
    advice: list[Advice] | None = Field(default=None, max_length=10)
    """Changes to the workload that the engine predicts would help."""
    applied_policy: str | None = None
    """The OptimizationPolicy whose objectives and constraints shaped the recommendation."""
    observed: ObservedFigures | None = None
    """What the target's live metrics show (with a targetRef and Prometheus)."""
    forecast: DemandForecast | None = None
    """The demand expected over the lead time."""
    scaling: ReplicaScaling | None = None
    """Replicas for the forecast demand, within the policy's guardrails."""
    hardware: HardwareReview | None = None
    """Whether another GPU type or precision would serve the observed load better."""
    anomalies: list[AnomalyReport] | None = Field(default=None, max_length=10)
    """Recent demand readings judged anomalous, newest last."""
    last_action: ScaleActionRecord | None = None
    """The latest replica change applied (or recorded) under an Auto policy."""
    actions: list[ScaleActionRecord] | None = Field(default=None, max_length=10)
    """Recent replica changes, newest first (the latest is also lastAction)."""
