"""The operator's control loop: from watch events to written statuses.

- `workqueue`: the debounced, de-duplicating queue of object keys.
- `reconciler`: the triggers (node, profile and policy changes) and the workers.
- `recommend`: a WorkloadProfile's recommendation step (parse, check, summarise, plan via the engine).
- `selection`: which profiles an OptimizationPolicy selects and where it applies.
- `memo`: the inventory and plan caches, keyed on exactly what they depend on.
- `writer`: the one status writer (merge patches, Events).

The live loop's rooms come beside these: `live` (one evaluation per interval, re-queued) and
`actuator` (gate, scale, record, verify, roll back).
"""
