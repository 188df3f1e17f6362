"""The static recommendation: which hardware a workload should run on, how many replicas, and why.

    options -> predictions (serving, training) -> capacity and replicas -> footprint (cost, power,
    carbon) -> ranking (TOPSIS under the policy's weights) -> explanation and advice.

`planner.plan` is the entry point (re-exported by the `greenmatrix` facade).
"""
