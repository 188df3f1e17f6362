"""How long one plan takes: every predictor over ~50 hardware options, in one process.

    .venv/bin/python hack/bench_latency.py [--repeat 20]

Prints the one-time model loading cost, the time of every model over a plan's options in one batch
(the engine alone), the time of one plan for a serving and a training workload
(with and without advice, which re-plans the workload variants), the time of one engine call (one
serving scenario through the predictor), and the ratio between them: what batching the options
buys over asking the engine once per option. Not a test: wall-clock numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

from greenmatrix.api import WorkloadProfileSpec
from greenmatrix.catalog import hardware
from greenmatrix.planning.planner import plan, resolve_model
from greenmatrix.predict.predictors import Predictors, backend_for
from greenmatrix.scenarios import ServingScenario

SERVING = {
    "task": "inference",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "bf16"},
    "inference": {"inputTokens": 1024, "outputTokens": 256, "concurrency": 32, "requestsPerSecond": 20},
}
TRAINING = {
    "task": "training",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
    "training": {"tokens": 2e9, "sequenceLength": 4096, "deadlineHours": 24},
}


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    start = time.perf_counter()
    predictors = Predictors.load()
    load_ms = (time.perf_counter() - start) * 1e3
    # Thirteen GPU types x {1,2,4,8} GPUs per replica (where a node holds them) is about 50 options.
    gpus = [g.key for g in hardware.all_gpus()][:13]
    serving = WorkloadProfileSpec.model_validate(SERVING)
    training = WorkloadProfileSpec.model_validate(TRAINING)
    options = len(plan(serving, None, predictors=predictors, gpus=gpus, advise=False).options)
    # Training layouts also span nodes, so the same GPU types give about twice the options.
    training_options = len(plan(training, None, predictors=predictors, gpus=gpus, advise=False).options)

    arch = resolve_model(serving)
    # The plan's own hardware options as scenarios: what every model costs for them in one batch,
    # without the replica sizing, economics and ranking around it.
    batch = [
        ServingScenario(
            model=arch,
            gpu=hardware.gpu(o.gpu),
            precision=serving.model.precision,
            backend=backend_for(serving.model.framework),
            input_tokens=serving.inference.input_tokens,
            output_tokens=serving.inference.output_tokens,
            concurrency=serving.inference.concurrency,
            tp=o.gpus_per_replica,
        )
        for o in plan(serving, None, predictors=predictors, gpus=gpus, advise=False).options
    ]
    one = [
        ServingScenario(
            model=arch, gpu=hardware.gpu("H100-SXM-80GB"), precision="bf16", backend=backend_for("vllm")
        )
    ]
    call_ms = _median_ms(lambda: predictors.serving(one), args.repeat * 5)
    batch_ms = _median_ms(lambda: predictors.serving(batch), args.repeat)
    plan_ms = _median_ms(
        lambda: plan(serving, None, predictors=predictors, gpus=gpus, advise=False), args.repeat
    )
    advised_ms = _median_ms(lambda: plan(serving, None, predictors=predictors, gpus=gpus), args.repeat)
    training_ms = _median_ms(lambda: plan(training, None, predictors=predictors, gpus=gpus), args.repeat)

    rows = [
        ("one engine call (1 serving scenario)", call_ms),
        (f"every model for the plan's {len(batch)} options, one batch", batch_ms),
        (f"one serving plan, {options} options, no advice", plan_ms),
        ("one serving plan with advice (re-plans variants)", advised_ms),
        (f"one training plan, {training_options} options", training_ms),
    ]
    print(f"predictors: {', '.join(predictors.notes) or 'learned models'}")
    print(f"model loading (once per process): {load_ms:.0f} ms")
    for label, ms in rows:
        print(f"{label:<50} {ms:9.2f} ms  {ms / call_ms:8.1f}x one call")
    print(f"per option in a plan: {plan_ms / options:.2f} ms vs {call_ms:.2f} ms asked one by one")


if __name__ == "__main__":
    main()
