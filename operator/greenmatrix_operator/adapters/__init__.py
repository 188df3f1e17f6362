"""The operator's boundary with the outside: each adapter turns one API's calls and faults into the
operator's terms, so nothing above it sees a client library or its exceptions.

- `kube`: the Kubernetes API (status merge patches, Events, targets read); `Gone`, `Rejected`,
  `Unavailable`.
- `prometheus`: PromQL over HTTP with retries and a circuit breaker; `PrometheusUnavailable`,
  `QueryRejected`, `MalformedResponse`. `queries`: the default PromQL per serving engine, scoped to
  a target's pods, and `spec.metrics` overrides. `observe`: one evaluation's reads, as numbers and
  the demand's new rows (nothing above it sees PromQL).
- `scale` (to come with actuation): the scale subresource; a 403 becomes `ScaleForbidden`.
"""
