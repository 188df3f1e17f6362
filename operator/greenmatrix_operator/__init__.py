"""The GreenMatrix operator: the imperative shell around the engine in `greenmatrix` (its facade only).

- `handlers`: Kopf registrations only (indexes over nodes, WorkloadProfiles, policies; events).
- `control/`: the loop: work queue, reconciler (triggers, workers), caches, the recommendation step,
  the one status writer.
- `status/`: condition types and reasons (which reason each outcome gets), engine results as status
  fields.
- `adapters/`: the outside world's APIs with their faults translated (Kubernetes today).
- `settings` (grouped by concern), `records` (what is kept of each watched object), `metrics`
  (typed, served on /metrics), `cli` (`greenmatrix operator`).
"""
