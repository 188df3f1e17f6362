"""The GreenMatrix operator: the imperative shell around the engine in `greenmatrix`.

- `handlers`: Kopf registrations only (indexes over nodes, WorkloadProfiles, policies; events).
- `reconciler`: the debounced work queue's workers and the one status-writing code path.
- `evaluation`: what a status should say, from in-memory inputs (calls the engine).
- `status`: conditions with honest transition times, minimal status patches.
- `kube`: the Kubernetes adapter (status patches, Events) with faults translated.
- `workqueue`, `records`, `metrics`, `cli` (`greenmatrix operator`).
"""
