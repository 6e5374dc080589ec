"""Every metric of the service, defined once: OpenTelemetry instruments read at scrape time.

Nothing here runs on the request path. The Check counts come from
:class:`~authz.telemetry.checks.CheckCounts`, the rest from the parts that
already count (the reloader, the key fetcher, the shadow, the store, the
decision log): each is an asynchronous (observable) instrument whose callback
reads those counters when :meth:`Metrics.collect` runs, i.e. when Prometheus
scrapes. The Check latency histogram is the one exception to "all through the
SDK": OpenTelemetry has no asynchronous histogram and a synchronous
``record`` per Check costs ~6 µs, so the buckets counted on the request path
are handed over as an SDK histogram data point at collection time.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
)
from opentelemetry.sdk.resources import Resource

from authz.decision import Reason
from authz.decision_cache import DecisionCache
from authz.identity.remote import KeyFetcher
from authz.reload import Reloader
from authz.shadow import Shadow
from authz.store import SnapshotStore
from authz.telemetry.checks import DURATION_BOUNDS_SECONDS, CheckCounts
from authz.telemetry.exposition import render

__all__ = ["ALL_TENANTS", "DURATION_METRIC", "DropCounts", "Metrics"]

DURATION_METRIC = "authz_check_duration_seconds"
#: The ``tenant`` label of a lockdown that covers every tenant.
ALL_TENANTS = "*"


class DropCounts(Protocol):
    """What the decision log reports: records it dropped (queue full, sink down), by decision."""

    @property
    def allow_dropped(self) -> int: ...

    @property
    def deny_dropped(self) -> int: ...


class Metrics:
    """The service's metrics over the parts of a running server; :meth:`exposition`
    is what ``/metrics`` serves.

    ``keys``, ``shadow``, ``decision_log`` and ``decision_cache`` are optional:
    without one, its metrics are simply absent.
    """

    def __init__(
        self,
        counts: CheckCounts,
        store: SnapshotStore,
        reloader: Reloader,
        *,
        keys: KeyFetcher | None = None,
        shadow: Shadow | None = None,
        decision_log: DropCounts | None = None,
        decision_cache: DecisionCache | None = None,
    ) -> None:
        self.counts, self.store, self.reloader = counts, store, reloader
        self.keys, self.shadow, self.decision_log = keys, shadow, decision_log
        self.decision_cache = decision_cache
        self._started_ns = time.time_ns()
        self._reader = InMemoryMetricReader()
        self._provider = MeterProvider(
            metric_readers=[self._reader],
            resource=Resource({"service.name": "authz"}),
            shutdown_on_exit=False,
        )
        meter = self._provider.get_meter("authz")
        counter, gauge = meter.create_observable_counter, meter.create_observable_gauge
        counter(
            "authz_checks",
            [self._checks],
            description="Check calls answered, by decision (allow|deny) and reason code",
        )
        gauge(
            "authz_policy_version_info",
            [self._version],
            description="The policy bundle version deciding now (value 1)",
        )
        counter(
            "authz_policy_reloads",
            [self._reloads],
            description="Bundle reloads finished, by result (success|failure)",
        )
        counter(
            "authz_cel_errors",
            [self._cel_errors],
            description="CEL runtime errors (the rule failed closed), by rule",
        )
        gauge(
            "authz_lockdowns_active",
            [self._lockdowns],
            description="Lockdowns in force (bundle and run time), by tenant ('*': every tenant)",
        )
        if keys is not None:
            counter(
                "authz_jwks_refreshes",
                [self._refreshes],
                description="Fetches of issuers' remote keys (JWKS), by issuer and result",
            )
            gauge(
                "authz_jwks_keys_ready",
                [self._keys_ready],
                description="Whether a trusted issuer's remote keys were fetched (1) or never (0)",
            )
        if shadow is not None:
            counter(
                "authz_shadow_mismatches",
                [self._mismatches],
                description="Shadow decisions that differ from the enforced one, by kind "
                "(widened: shadow allows what was denied; narrowed: the reverse; changed)",
            )
            counter(
                "authz_shadow_evaluations",
                [self._shadowed],
                description="Shadow evaluations, by result (evaluated|error|dropped)",
            )
        if decision_log is not None:
            counter(
                "authz_decision_log_records_dropped",
                [self._dropped],
                description="Decision log records dropped, by kind (allow|deny)",
            )
        if decision_cache is not None:
            counter(
                "authz_decision_cache_lookups",
                [self._cache_lookups],
                description="Decision cache lookups, by result (hit|miss|bypass: "
                "a request or policy version that is not cached)",
            )
            counter(
                "authz_decision_cache_evictions",
                [self._cache_evictions],
                description="Decision cache entries pushed out by the size bound",
            )
            gauge(
                "authz_decision_cache_entries",
                [self._cache_entries],
                description="Decisions in the cache now (expired ones included until replaced)",
            )

    def collect(self) -> list[Metric]:
        """Every metric's current value."""
        data = self._reader.get_metrics_data()
        metrics = [
            metric
            for resource in (data.resource_metrics if data is not None else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
        ]
        metrics.append(self._durations())
        return metrics

    def exposition(self) -> str:
        """The metrics in the Prometheus text format (version 0.0.4)."""
        return render(self.collect())

    def shutdown(self) -> None:
        self._provider.shutdown()

    def _checks(self, options: CallbackOptions) -> Iterable[Observation]:
        for (reason, tenant), count in list(self.counts.decisions.items()):
            labels = {"decision": "allow" if reason is Reason.ALLOWED else "deny"}
            labels["reason"] = reason.value
            if tenant:
                labels["tenant"] = tenant
            yield Observation(count, labels)

    def _version(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(1, {"version": self.store.active_version})

    def _reloads(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.reloader.successes, {"result": "success"})
        yield Observation(self.reloader.failures, {"result": "failure"})

    def _cel_errors(self, options: CallbackOptions) -> Iterable[Observation]:
        for rule, count in list(self.counts.cel_errors.items()):
            yield Observation(count, {"rule": rule})

    def _lockdowns(self, options: CallbackOptions) -> Iterable[Observation]:
        now = datetime.now(UTC)
        active = Counter(
            lockdown.tenant or ALL_TENANTS
            for lockdown in self.store.current.lockdowns
            if lockdown.expires is None or now < lockdown.expires
        )
        active.setdefault(ALL_TENANTS, 0)  # the series exists even when nothing is locked
        for tenant, count in sorted(active.items()):
            yield Observation(count, {"tenant": tenant})

    def _refreshes(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.keys is not None
        successes: Counter[str] = Counter()
        failures: Counter[str] = Counter()
        for status in self.keys.statuses():  # an issuer may have had several key URLs
            successes[status.issuer] += status.refreshes
            failures[status.issuer] += status.failures
        for issuer in sorted(successes):
            yield Observation(successes[issuer], {"issuer": issuer, "result": "success"})
            yield Observation(failures[issuer], {"issuer": issuer, "result": "failure"})

    def _keys_ready(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.keys is not None
        for issuer in self.store.current.issuers:
            if issuer.remote is not None:
                ready = self.keys.source(issuer.remote).status().ready
                yield Observation(int(ready), {"issuer": issuer.remote.issuer})

    def _mismatches(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.shadow is not None
        shadow = self.shadow
        changed = shadow.differences - shadow.widened - shadow.narrowed
        yield Observation(shadow.widened, {"kind": "widened"})
        yield Observation(shadow.narrowed, {"kind": "narrowed"})
        yield Observation(changed, {"kind": "changed"})

    def _shadowed(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.shadow is not None
        yield Observation(self.shadow.evaluated, {"result": "evaluated"})
        yield Observation(self.shadow.errors, {"result": "error"})
        yield Observation(self.shadow.dropped, {"result": "dropped"})

    def _dropped(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.decision_log is not None
        yield Observation(self.decision_log.allow_dropped, {"kind": "allow"})
        yield Observation(self.decision_log.deny_dropped, {"kind": "deny"})

    def _cache_lookups(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.decision_cache is not None
        cache = self.decision_cache
        yield Observation(cache.hits, {"result": "hit"})
        yield Observation(cache.misses, {"result": "miss"})
        yield Observation(cache.bypasses, {"result": "bypass"})

    def _cache_evictions(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.decision_cache is not None
        yield Observation(self.decision_cache.evictions)

    def _cache_entries(self, options: CallbackOptions) -> Iterable[Observation]:
        assert self.decision_cache is not None
        yield Observation(self.decision_cache.entries)

    def _durations(self) -> Metric:
        """The latency buckets counted on the request path, as an SDK histogram."""
        counts = self.counts
        point = HistogramDataPoint(
            attributes={},
            start_time_unix_nano=self._started_ns,
            time_unix_nano=time.time_ns(),
            count=sum(counts.buckets),
            sum=counts.duration_ns / 1e9,
            bucket_counts=list(counts.buckets),
            explicit_bounds=DURATION_BOUNDS_SECONDS,
            min=math.nan,  # not tracked: two more comparisons per Check for no alert or panel
            max=math.nan,
        )
        return Metric(
            name=DURATION_METRIC,
            description="Time to decide a Check and encode its response",
            unit="s",
            data=Histogram([point], AggregationTemporality.CUMULATIVE),
        )
