"""Prometheus metrics every long-running process shares: RED metrics for its gRPC servers,
refusals by code, and the HTTP endpoint that serves them.

One prefix (``a6_``), base units in names, ``_total`` on counters (added by the client
library), and only low-cardinality labels: service and method names, gRPC status names,
response-code names, registry ids. Never serials, accounts, transaction or message ids.
Each process builds its metrics on its own ``CollectorRegistry`` at start-up; nothing is
registered at import time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from article6.breaker import BreakerState
from article6.codes import Refusal
from article6.process import StartupError
from article6.status import Failure

LATENCY_BUCKETS_SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class RpcMetrics:
    """Requests, errors and duration of every RPC a process serves, and the numbered
    refusals it sends (signature, certificate, replay, skew, ...)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "a6_rpc_requests",
            "RPCs served, by service, method and gRPC status.",
            ["service", "method", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "a6_rpc_duration_seconds",
            "Time to serve an RPC, by service and method.",
            ["service", "method"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.refusals = Counter(
            "a6_message_refusals",
            "Messages refused before they were taken (gRPC status with a numbered code), "
            "by code name.",
            ["reason"],
            registry=registry,
        )

    def refused(self, refusal: Refusal, peer: str | None = None) -> None:
        """Count one refusal by its code (the peer is in the log, not in a label: unbounded)."""
        self.refusals.labels(reason=refusal.code.name.lower()).inc()

    def interceptor(self) -> grpc.aio.ServerInterceptor[Any, Any]:
        return _RedInterceptor(self)


if TYPE_CHECKING:  # the stubs make interceptors generic; grpc's runtime class is not
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class _RedInterceptor(_Interceptor):
    def __init__(self, metrics: RpcMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        # The stubs type handlers as synchronous; on an aio server they are coroutines.
        behaviour: Callable[..., Awaitable[Any]] = handler.unary_unary
        metrics = self.metrics

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return await behaviour(request, context)
            except BaseException:
                status = context.code()
                code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                raise
            finally:
                metrics.requests.labels(service, method, code).inc()
                metrics.duration.labels(service, method).observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class DeliveryMetrics:
    """What a process's pump counts, by recipient: the same for the hub and every registry
    (``article6.pump.Counts``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "a6_delivery_attempts",
            "Deliveries tried, by recipient registry.",
            ["registry"],
            registry=registry,
        )
        self.failures = Counter(
            "a6_delivery_failures",
            "Deliveries that failed, by recipient registry and reason (gRPC status or code).",
            ["registry", "reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "a6_dead_letters",
            "Messages that became dead letters, by recipient registry.",
            ["registry"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "a6_delivery_breaker_state",
            "Delivery circuit breaker by recipient registry: 0 closed, 1 half open (probing), "
            "2 open (not answering; its messages wait in the outbox).",
            ["registry"],
            registry=registry,
        )

    def attempt(self, recipient: str, failure: Failure | None) -> None:
        self.attempts.labels(recipient).inc()
        if failure is not None:
            self.failures.labels(recipient, failure.reason).inc()

    def dead_letter(self, recipient: str) -> None:
        self.dead_letters.labels(recipient).inc()

    def breaker(self, recipient: str, state: BreakerState) -> None:
        self.breaker_state.labels(recipient).set(state.value)


def outbox_families() -> list[GaugeMetricFamily]:
    """Outbox gauges by recipient, filled at scrape time: depth, failing, dead, oldest age."""
    return [
        GaugeMetricFamily(
            "a6_outbox_messages",
            "Messages waiting for delivery, by recipient.",
            labels=["registry"],
        ),
        GaugeMetricFamily(
            "a6_outbox_failing_messages",
            "Messages tried at least once and not yet delivered, by recipient.",
            labels=["registry"],
        ),
        GaugeMetricFamily(
            "a6_outbox_dead_letters", "Dead letters, by recipient.", labels=["registry"]
        ),
        GaugeMetricFamily(
            "a6_outbox_oldest_age_seconds",
            "Age of the oldest message waiting for delivery, by recipient.",
            labels=["registry"],
        ),
    ]


def serve_metrics(listen: str, registry: CollectorRegistry) -> Any:
    """Serve ``/metrics`` over HTTP at ``host:port``; returns the server (``shutdown()``)."""
    host, _, port = listen.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    except OSError as error:
        raise StartupError(f"cannot serve metrics on {listen}: {error.strerror}") from None
    return server
