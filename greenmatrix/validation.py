"""Checks on specs that the CRD schema cannot express: they need the catalogs or cross-field sense.

The API server already enforces shapes, bounds, enums and the CEL rules in `greenmatrix.api`;
these functions catch what passes the schema yet cannot be acted on (a model the catalog does not
know, a GPU name nothing resolves, restrictions that exclude everything). Each returns every
problem found, as errors naming the field and what would be accepted.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from greenmatrix.api.optimizationpolicy import OptimizationPolicySpec
from greenmatrix.api.workloadprofile import WorkloadProfileSpec
from greenmatrix.catalog import hardware, llms
from greenmatrix.catalog.precision import PRECISIONS
from greenmatrix.errors import GreenMatrixError, InvalidSpecError, UnknownHardwareError, UnknownModelError
from greenmatrix.planning.options import LAYOUTS

# How far a spec's parameter count may stray from what its sizes imply before a warning: the estimate
# misses untied embeddings, shared experts and ungated feed-forwards, each well under 3x (every catalog
# model is within 1.25x).
PARAMETER_TOLERANCE = 3.0
# 4-bit weights are a serving quantisation (weight-only int4, NVFP4 inference): a full training run
# keeps 16-bit gradients and fp32 optimizer states, and the planner costs it as such.
UNTRAINABLE_PRECISIONS = ("int4", "fp4")


def validate_workload(
    spec: WorkloadProfileSpec, node_products: Collection[str] = ()
) -> list[GreenMatrixError]:
    """Problems with a WorkloadProfile spec; empty when it can be acted on.

    `node_products` are GPU product labels seen on nodes: a GPU name the catalog does not know is
    still accepted when a node carries exactly that product (the inventory can show it).
    """
    errors: list[GreenMatrixError] = []
    errors += _model_errors(spec)
    if spec.hardware is not None:
        errors += _gpu_name_errors(spec.hardware.allowed_gpus, "spec.hardware.allowedGpus", node_products)
        errors += _gpu_name_errors(spec.hardware.excluded_gpus, "spec.hardware.excludedGpus", node_products)
        errors += _restriction_errors(spec)
    return errors


def workload_warnings(spec: WorkloadProfileSpec) -> list[str]:
    """Doubts about a spec that can be acted on: numbers unlikely to be meant, each naming its field."""
    a = spec.model.architecture
    if a is None:
        return []
    warnings: list[str] = []
    low, high = implied_parameters(
        layers=a.layers,
        hidden=a.hidden_size,
        heads=a.attention_heads,
        kv_heads=a.kv_heads or a.attention_heads,
        head_dim=a.head_dim or a.hidden_size / a.attention_heads,
        intermediate=a.intermediate_size or 4 * a.hidden_size,
        vocab=a.vocab_size or 32000,
        experts=a.experts,
    )
    if not low / PARAMETER_TOLERANCE <= a.parameters <= high * PARAMETER_TOLERANCE:
        implied = f"{low:.2g}" if low == high else f"{low:.2g} to {high:.2g}"
        warnings.append(
            f"spec.model.architecture.parameters: {a.parameters:.3g} is far from the {implied} that"
            " layers, hiddenSize, intermediateSize and vocabSize imply; the plan sizes memory and FLOPs"
            " from parameters, so check the numbers"
        )
    if a.head_dim is None and a.hidden_size % a.attention_heads:
        warnings.append(
            f"spec.model.architecture.attentionHeads: {a.attention_heads} does not divide hiddenSize"
            f" {a.hidden_size}; each head is taken as {a.hidden_size // a.attention_heads} wide"
            " (hiddenSize // attentionHeads), which sizes the KV cache and attention; give headDim"
        )
    return warnings


def implied_parameters(
    *,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: float,
    intermediate: int,
    vocab: int,
    experts: int = 0,
) -> tuple[float, float]:
    """The range of parameters a transformer of these sizes holds: attention (fewer key/value heads
    shrink it), a gated feed-forward per expert and the embedding; norms and biases are negligible.

    Dense models get one number twice. A mixture of experts spans from its attention and embedding
    alone to every expert at `intermediate`: specs often give the dense layers' intermediateSize
    (DeepSeek-V3's is 9x its experts'), so only a count outside that span is clearly wrong.
    """
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    feed_forward = 3 * hidden * intermediate
    embedding = vocab * hidden
    if not experts:
        total = layers * (attention + feed_forward) + embedding
        return total, total
    return layers * attention + embedding, layers * (attention + feed_forward * experts) + embedding


def validate_policy(
    spec: OptimizationPolicySpec, node_products: Collection[str] = ()
) -> list[GreenMatrixError]:
    """Problems with an OptimizationPolicy spec; empty when it can be acted on."""
    if spec.constraints is None:
        return []
    errors = _gpu_name_errors(spec.constraints.allowed_gpus, "spec.constraints.allowedGpus", node_products)
    if spec.constraints.allowed_gpus == []:
        errors.append(
            InvalidSpecError(
                "spec.constraints.allowedGpus",
                "an empty list allows no GPU at all; omit the field to allow every GPU",
            )
        )
    return errors


def schema_errors(error: ValidationError, prefix: str = "spec") -> list[GreenMatrixError]:
    """Pydantic's complaints as field-named errors (for objects stored before a schema change)."""
    return [InvalidSpecError(field_path(item["loc"], prefix), describe(item)) for item in error.errors()]


def field_path(loc: Sequence[int | str], prefix: str = "spec") -> str:
    """A pydantic error location as the manifest's field path (camelCase, list indexes in brackets)."""
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


# Pydantic's complaints about a field that holds a number (its type or its bounds).
_NUMBER_ERRORS = frozenset(
    {
        "int_type",
        "int_from_float",
        "float_type",
        "finite_number",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "multiple_of",
    }
)


def describe(item: Mapping[str, Any]) -> str:
    """One pydantic complaint in a manifest author's words: what was given when the type is wrong."""
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; fields are camelCase)"
    if kind == "missing":
        return "required field is missing"
    message = str(item["msg"])
    if kind == "value_error":
        # A rule across fields (kvHeads and attentionHeads): our own sentence, without pydantic's label.
        message = message.removeprefix("Value error, ")
    given = item.get("input")
    if isinstance(given, float) and not math.isfinite(given) and kind in _NUMBER_ERRORS:
        # `.nan` fails every bound, so pydantic's "should be less than" would point the wrong way.
        # Only where a number belongs: `precision: .nan` needs a precision name, not a number.
        return f"must be a finite number, got {given}"
    # YAML makes `"32"` a string and `yes` a boolean: the manifest looks right at a glance, so say
    # what was read.
    read = "true" if given is True else "false" if given is False else repr(given)
    if kind in ("int_type", "float_type") and isinstance(given, str | bool):
        message += f", got {read}" + ("; write numbers without quotes" if isinstance(given, str) else "")
    elif kind == "string_type" and isinstance(given, bool | int | float):
        message += f", got {read}; quote it to make it a string"
    return message


def _model_errors(spec: WorkloadProfileSpec) -> list[GreenMatrixError]:
    errors: list[GreenMatrixError] = []
    model = spec.model
    max_context = 0
    if model.name is not None:
        try:
            arch = llms.model_arch(model.name)
        except UnknownModelError as err:
            errors.append(
                UnknownModelError(
                    "spec.model.name",
                    f"{model.name!r} is not in the model catalog; use a catalog name"
                    " (`greenmatrix models` lists them) or give spec.model.architecture instead",
                    err.allowed,
                )
            )
        else:
            max_context = arch.max_context
    if spec.task == "training" and model.kv_cache_precision is not None:
        errors.append(
            InvalidSpecError(
                "spec.model.kvCachePrecision", "applies to inference only; remove it for training"
            )
        )
    if spec.inference is not None and max_context:
        length = spec.inference.input_tokens + spec.inference.output_tokens
        if length > max_context:
            errors.append(
                InvalidSpecError(
                    "spec.inference.inputTokens",
                    f"inputTokens + outputTokens = {length} exceeds the context window of"
                    f" {model.name} ({max_context} tokens)",
                )
            )
    if spec.task == "training" and model.precision in UNTRAINABLE_PRECISIONS:
        errors.append(
            InvalidSpecError(
                "spec.model.precision",
                f"{model.precision} is a 4-bit serving quantisation; a training run keeps 16-bit"
                " gradients and fp32 optimizer states, so give the precision its matmuls run at",
                [p for p in PRECISIONS if p not in UNTRAINABLE_PRECISIONS],
            )
        )
    training = spec.training
    if training is not None and max_context and (training.sequence_length or 0) > max_context:
        errors.append(
            InvalidSpecError(
                "spec.training.sequenceLength",
                f"{training.sequence_length} exceeds the context window of {model.name}"
                f" ({max_context} tokens)",
            )
        )
    if training is not None and training.samples is not None and training.sequence_length is None:
        # Every model GreenMatrix sizes is a language model: samples only mean something as sequences.
        errors.append(
            InvalidSpecError(
                "spec.training.sequenceLength",
                "required with training.samples for a language model (tokens = samples x sequenceLength);"
                " or give training.tokens instead",
            )
        )
    return errors


def _known_gpu(name: str, node_products: Collection[str]) -> bool:
    if hardware.normalize_gpu_name(name) is not None:
        return True
    lowered = name.strip().lower()
    return any(lowered == p.lower() for p in node_products)


def _gpu_name_errors(
    names: Sequence[str] | None, field: str, node_products: Collection[str]
) -> list[GreenMatrixError]:
    errors: list[GreenMatrixError] = []
    for i, name in enumerate(names or ()):
        if _known_gpu(name, node_products):
            continue
        try:
            hardware.gpu(name)
            suggestions: tuple[str, ...] = ()
        except hardware.UnknownHardwareError as err:
            suggestions = err.suggestions
        allowed = list(suggestions) or [g.key for g in hardware.all_gpus()]
        allowed += sorted(set(node_products) - set(allowed))
        errors.append(
            UnknownHardwareError(
                f"{field}[{i}]",
                f"{name!r} is neither a GPU in the catalog nor a product label on any node",
                allowed,
            )
        )
    return errors


def _same_gpu(a: str, b: str) -> bool:
    if a.strip().lower() == b.strip().lower():
        return True
    key = hardware.normalize_gpu_name(a)
    return key is not None and key == hardware.normalize_gpu_name(b)


def _restriction_errors(spec: WorkloadProfileSpec) -> list[GreenMatrixError]:
    restrictions = spec.hardware
    assert restrictions is not None
    errors: list[GreenMatrixError] = []
    allowed = restrictions.allowed_gpus
    excluded = restrictions.excluded_gpus or []
    for j, name in enumerate(excluded):
        clash = next((a for a in allowed or () if _same_gpu(a, name)), None)
        if clash is not None:
            errors.append(
                InvalidSpecError(
                    f"spec.hardware.excludedGpus[{j}]",
                    f"{name!r} is also allowed (allowedGpus has {clash!r});"
                    " a GPU is either allowed or excluded",
                )
            )
    low, high = restrictions.min_gpus_per_replica, restrictions.max_gpus_per_replica
    if not any(low <= n <= high for n in LAYOUTS):
        span = str(low) if low == high else f"{low}-{high}"
        errors.append(
            InvalidSpecError(
                "spec.hardware.minGpusPerReplica",
                f"no replica layout has {span} GPUs: a replica spans 1, 2, 4 or 8 GPUs of one node",
                [str(n) for n in LAYOUTS],
            )
        )
    if allowed == [] and not restrictions.allow_cpu:
        errors.append(
            InvalidSpecError(
                "spec.hardware.allowedGpus",
                "an empty list with allowCpu false leaves no hardware at all;"
                " omit allowedGpus to allow every GPU",
            )
        )
    return errors
