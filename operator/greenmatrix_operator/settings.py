"""The operator's settings, one object grouped by concern (as Kopf groups its `OperatorSettings`).

`greenmatrix operator`'s flags fill it; the work queue, the retries, the caches, the servers and
the Kubernetes adapter each read their own group. `kopf_settings` turns the watching and peering
groups into Kopf's own settings object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import kopf

# Our annotations, finalizer and peering live under this prefix, never on fields of users' objects.
PREFIX = "greenmatrix.io"
# Objects per page of a start's listing (Kopf's and the profile store's), as client-go's informers page.
LISTING_PAGE = 500


@dataclass(frozen=True)
class QueueSettings:
    debounce: float = 0.2
    """Seconds to gather a burst of changes to one object into one reconcile."""
    policy_recount: float = 1.0
    """Seconds a policy waits, after a profile of its namespace appears, goes or changes labels, before
    it counts its profiles again: a burst of creates is one recount and status write per second, not
    one per profile."""
    workers: int = 8
    """Objects reconciled at once. A reconcile mostly waits on the API server (a status patch and an
    Event); with 2, creates at 50/s on the lab queued up (apply -> Ready p50 8-10 s at 3,000 profiles,
    0.45 s with 8; 16 gained nothing more)."""


@dataclass(frozen=True)
class RetrySettings:
    delays: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    """Seconds before the next try after consecutive failures of one object; the last one repeats.
    A write the API server refused waits the last one at once: the same write will be refused again."""


@dataclass(frozen=True)
class CacheSettings:
    plans: int = 2048
    """Plans kept for re-use, without their full option tables (~50 kB each: up to ~100 MB). More
    distinct specs than this, met in turn, would miss every time (LRU)."""
    live_plans: int = 256
    """Plans at observed loads kept with every option (tens of kB each)."""
    inventories: int = 1024
    """Inventory summaries kept per node set before the memo starts over."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    health_port: int = 8080
    """Liveness /healthz port; 0 disables it."""
    metrics_port: int = 8081
    """Prometheus /metrics port; 0 disables it."""


@dataclass(frozen=True)
class PeeringSettings:
    name: str | None = None
    """Kopf's peering object for several replicas (one active); None runs standalone."""
    priority: int | None = None
    """This replica's priority among its peers (the highest live one works); None: a random one, so
    that two replicas never tie (Kopf pauses every replica on a tie)."""
    lifetime: int = 60
    """Seconds a keep-alive lasts: a killed active replica is replaced within about this long."""

    @property
    def standalone(self) -> bool:
        return self.name is None


@dataclass(frozen=True)
class WatchingSettings:
    namespaces: tuple[str, ...] = ()
    """Namespaces (glob patterns allowed) whose objects are served; empty: the whole cluster."""
    server_timeout: int = 300
    client_timeout: int = 330


@dataclass(frozen=True)
class ApiSettings:
    connect_timeout: float = 5
    read_timeout: float = 30
    """A hung API call must not stall the work queue."""


@dataclass(frozen=True)
class LiveSettings:
    prometheus_url: str | None = None
    """Where the workloads' metrics are read; None: no live loop (recommendations only)."""
    default_interval: float = 300.0
    """Seconds between evaluations of a workload when no policy sets evaluationInterval."""
    startup: float = 180.0
    """Seconds a new replica takes to serve: the forecast looks this far ahead plus one interval."""
    history: float = 7 * 86_400.0
    """Seconds of demand history read at a workload's first evaluation (after that, only new rows)."""
    scrape_interval: float = 30.0
    """Prometheus's scrape interval: rate windows span at least four scrapes."""
    timeout: float = 10.0
    """Seconds one Prometheus request may take."""
    stale_after: float = 3.0
    """Evaluation intervals without a sample before the metrics count as stale."""


@dataclass(frozen=True)
class ActuationSettings:
    enabled: bool = False
    """The admin's switch for auto-apply (with the scale rights of the auto-apply overlay or chart
    value): without it no policy's `mode: Auto` changes anything."""
    dry_run: bool = False
    """Record the actions auto-apply would take, patch nothing."""
    settle: float = 120.0
    """Seconds after an action's replicas are ready before its verification window opens."""
    window: float = 600.0
    """Seconds of the verification window."""
    min_samples: int = 5
    """Fewest evaluations in the window for a verdict."""
    history: int = 8
    """Actions kept in a WorkloadProfile's status."""
    crash_after_intent: bool = False
    """Fault injection for the lab's crash-safety test (env GREENMATRIX_FAULT_CRASH_AFTER_INTENT=1):
    SIGKILL this process right after an intent is recorded, before its patch; a crash no real part
    produces on demand at that moment."""


@dataclass(frozen=True)
class OperatorSettings:
    queue: QueueSettings = field(default_factory=QueueSettings)
    retries: RetrySettings = field(default_factory=RetrySettings)
    caches: CacheSettings = field(default_factory=CacheSettings)
    servers: ServerSettings = field(default_factory=ServerSettings)
    peering: PeeringSettings = field(default_factory=PeeringSettings)
    watching: WatchingSettings = field(default_factory=WatchingSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    actuation: ActuationSettings = field(default_factory=ActuationSettings)


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """Kopf's settings: nothing written on users' objects beyond GreenMatrix's own status."""
    import kopf  # here, so that `greenmatrix operator --help` does not load Kopf

    out = kopf.OperatorSettings()
    # Our handlers store no progress; should one ever need it, it goes to annotations under our
    # prefix, never to status.kopf (the CRD schema prunes unknown status fields).
    out.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    out.persistence.diffbase_storage = events_only_diffbase()
    out.persistence.finalizer = f"{PREFIX}/operator"
    # Events are posted deliberately by the status writer; handler log lines stay in the log.
    out.posting.enabled = False
    out.peering.standalone = settings.peering.standalone
    if settings.peering.name is not None:
        out.peering.name = settings.peering.name
        out.peering.mandatory = True
        out.peering.lifetime = settings.peering.lifetime
        if settings.peering.priority is not None:
            out.peering.priority = settings.peering.priority
    # Kopf lists every kind before watching it, unpaged unless told: at 10,000 profiles a restart held
    # the whole listing (~80 MB of JSON, several times that as dicts) at once.
    out.watching.chunk_size = LISTING_PAGE
    out.watching.server_timeout = settings.watching.server_timeout
    out.watching.client_timeout = settings.watching.client_timeout
    return out


def events_only_diffbase() -> kopf.DiffBaseStorage:
    """A diff-base that keeps nothing and builds an empty essence.

    Kopf builds every event's essence (a deep copy of the whole object, status included) for
    on.create/update/resume handlers and daemons. The operator has none (`handlers.py`: indexes and
    on.event only, a test holds it), so the essence was never read: about 5% of the operator's
    samples went into copying statuses for nothing at 3,000 profiles.
    """
    import kopf

    class EventsOnlyDiffBase(kopf.DiffBaseStorage):
        def build(self, *, body: Any, extra_fields: Any = None) -> kopf.BodyEssence:
            return kopf.BodyEssence()

        def fetch(self, *, body: Any) -> kopf.BodyEssence | None:
            return None

        def store(self, *, body: Any, patch: Any, essence: Any) -> None:
            return None

    return EventsOnlyDiffBase()
