"""What a prediction is asked about: one scenario type per kind of job.

Plain frozen values, shared by the planner (which builds them from a workload spec), the learned
predictors (which turn them into physics features) and the roofline fallbacks. They sit below
`greenmatrix.learned` and import only the catalog and the physics, so that the arrows point one way:
plan -> predict -> learned -> physics -> catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from greenmatrix.catalog.hardware import GPUSpec
from greenmatrix.catalog.llms import ModelArch
from greenmatrix.physics.device import GPULike
from greenmatrix.physics.llm import Parallelism, Precisions


@dataclass(frozen=True)
class ServingScenario:
    """One serving configuration to predict: a model on a GPU type with a parallel layout.

    ``concurrency`` is the number of requests in flight on one replica. For disaggregated
    serving set ``disaggregated`` and the prefill layout; ``tp``/``ep``/``attention_dp`` are then
    the decode workers' layout.
    """

    model: ModelArch
    gpu: GPULike
    precision: str = "fp8"
    backend: str = "trtllm"
    input_tokens: int = 1024
    output_tokens: int = 1024
    concurrency: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    moe_tp: int = 0
    attention_dp: int = 1
    moe_precision: str | None = None
    kv_precision: str | None = None
    disaggregated: bool = False
    prefill_tp: int = 1
    prefill_ep: int = 1
    prefill_attention_dp: int = 1
    prefill_workers: int | None = None
    decode_workers: int | None = None

    @property
    def parallelism(self) -> Parallelism:
        return Parallelism(
            tp=self.tp, pp=self.pp, ep=self.ep, moe_tp=self.moe_tp, attention_dp=self.attention_dp
        )

    @property
    def prefill_parallelism(self) -> Parallelism | None:
        if not self.disaggregated:
            return None
        return Parallelism(tp=self.prefill_tp, ep=self.prefill_ep, attention_dp=self.prefill_attention_dp)

    @property
    def precisions(self) -> Precisions:
        return Precisions.of(self.precision, self.moe_precision, self.kv_precision)


@dataclass(frozen=True)
class TrainingJob:
    """A training run of `gpus` GPUs of one type (data parallel, sharded optimizer states).

    A language model is given by `model` (its active parameters set the FLOPs, its total parameters
    the gradients) or by `params`, with `tokens` per epoch (or `samples` of `sequence_length`
    tokens); the planner passes all its tokens as one epoch. Any other network is given by
    `forward_flops_per_sample` with `samples`, and its `family`. `global_batch` is samples
    (sequences) per optimizer step.
    """

    gpu: GPUSpec
    gpus: int
    model: ModelArch | None = None
    params: float | None = None
    tokens: float | None = None
    samples: float | None = None
    epochs: float = 1.0
    global_batch: int | None = None
    precision: str = "bf16"
    sequence_length: int = 2048
    forward_flops_per_sample: float | None = None
    family: str = "transformer"
    framework: str = "pytorch"
