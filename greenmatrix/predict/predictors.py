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
from collections.abc import Sequence
from typing import Any, Protocol

from greenmatrix.catalog.llms import ModelArch
from greenmatrix.catalog.precision import bytes_per_param
from greenmatrix.learned.serving import ServingPrediction
from greenmatrix.physics import llm as llm_physics
from greenmatrix.predict.roofline import (
    CPU_SERVING,
    CPUDevice,
    RooflineServing,
    RooflineTraining,
    TrainingEstimate,
    training_fits,
    training_memory_gib,
)
from greenmatrix.scenarios import ServingScenario, TrainingJob

# Serving engines the learned model was trained on; other frameworks are predicted as vLLM, the
# closest general-purpose engine.
LEARNED_BACKENDS = ("trtllm", "vllm", "sglang")


class ServingModel(Protocol):
    def predict(self, scenarios: Sequence[ServingScenario]) -> list[ServingPrediction]: ...


class TrainingModel(Protocol):
    def predict(self, jobs: Sequence[TrainingJob]) -> list[TrainingEstimate]: ...


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
