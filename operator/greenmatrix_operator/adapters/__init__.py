"""The operator's boundary with the outside: each adapter turns one API's calls and faults into the
operator's terms, so nothing above it sees a client library or its exceptions.

- `kube`: the Kubernetes API (status merge patches, Events); `Gone`, `Rejected`, `Unavailable`.
- `prometheus` (to come with the live loop): PromQL in, the engine's series out;
  `MetricsUnavailable`, `QueryRejected`, `MetricsStale`.
- `scale` (to come with actuation): the scale subresource; a 403 becomes `ScaleForbidden`.
"""
