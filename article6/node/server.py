"""The reference registry process: serves article6.v1.Registry, sends its outbox, recovers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

import grpc.aio
from grpc_health.v1 import _async as health_aio  # what `health.aio` re-exports
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from article6.keys import SigningKey, read_key_file
from article6.metrics import serve_metrics
from article6.node import store
from article6.node.config import RegistryConfig
from article6.node.engine import RegistryEngine, Rules
from article6.node.metrics import RegistryMetrics
from article6.node.sender import Sender
from article6.node.service import RegistryService, Writer
from article6.node.store import Schema, open_database
from article6.process import DatabaseLock, listen, lock_database, raise_fd_limit
from article6.pump import Channels
from article6.refusals import RefusalLog, heard_by
from article6.service import server_options
from article6.sql import shown_url
from article6.tls import TlsMaterial, server_credentials

log = logging.getLogger("registry.server")
REGISTRY_SERVICE = "article6.v1.Registry"
HUB_SERVICE = "article6.v1.Hub"


def build_engine(config: RegistryConfig, rules: Rules) -> RegistryEngine:
    key = SigningKey.from_pem(config.signing_key.read_bytes())
    return RegistryEngine(config.registry_id, config.hub_id, key, rules)


class RegistryNode:
    """One registry process: the Registry server, the sender and recovery loops, metrics.

    ``tables`` are the registry's own tables beside the shared books (its accounts...).
    """

    def __init__(self, config: RegistryConfig, rules: Rules, tables: Sequence[Schema] = ()) -> None:
        self.config = config
        self.registry = build_engine(config, rules)
        self.key = self.registry.key
        self.directory = read_key_file(config.keys)
        self.tls = TlsMaterial.from_paths(
            config.ca_certificate, config.tls_certificate, config.tls_key
        )
        self.writer = Writer(open_database(config.database, *tables))
        self.metrics_registry = CollectorRegistry()
        self.metrics = RegistryMetrics(self.metrics_registry, self.writer.engine, config.hub_id)
        self.health = health_aio.HealthServicer()
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._hub_check: asyncio.Task[None] | None = None
        self._metrics_server: Any = None
        self._lock = DatabaseLock(None)

    async def start(self) -> None:
        """Open the books and serve the Registry service. Health says NOT_SERVING until
        ``serving``, which the process calls once its other listeners (an admin service, an
        intake, a portal) are up too: whoever waits for health then finds every port open."""
        for name in ("", REGISTRY_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._lock = lock_database(self.config.database, f"registry {self.config.registry_id}")
        raise_fd_limit()
        # One process owns the books: a stopped one's outbox claims are this one's.
        hub_id = self.config.hub_id
        await self.writer.run(lambda unit: store.start_outbox(unit.connection, hub_id))
        # The metrics port first: one that is taken stops the registry before it serves.
        if self.config.metrics_listen:
            self._metrics_server = serve_metrics(self.config.metrics_listen, self.metrics_registry)
        self.server = grpc.aio.server(
            options=server_options(), interceptors=[self.metrics.rpc.interceptor()]
        )
        on_refusal = heard_by(self.metrics.rpc.refused, RefusalLog(log, inbound=True))
        service = RegistryService(self.registry, self.directory, self.key, self.writer)
        self.server.add_generic_rpc_handlers([service.handler(on_refusal)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [REGISTRY_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        listen(self.server, self.config.listen, server_credentials(self.tls))
        hub_endpoint = self.config.hub_endpoint
        self.channels = Channels(
            lambda _: hub_endpoint, self.tls, self.config.delivery.backoff_max_seconds
        )
        self.channel = self.channels.get(self.config.hub_id)
        sender = Sender(
            self.registry, self.config.delivery, self.writer, self.directory, self.key,
            self.channel, self.metrics,
        )  # fmt: skip
        await self.server.start()
        self._tasks = [
            asyncio.create_task(sender.run(self.stopping), name="sender"),
            asyncio.create_task(sender.recover(self.stopping), name="recovery"),
        ]
        self._hub_check = asyncio.create_task(self._check_hub(), name="hub check")

    async def serving(self) -> None:
        """Say SERVING (see ``start``)."""
        for name in ("", REGISTRY_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("registry %s serving on %s, metrics on %s, database %s, hub %s at %s",
                 self.config.registry_id, self.config.listen,
                 self.config.metrics_listen or "(none)", shown_url(self.config.database),
                 self.config.hub_id, self.config.hub_endpoint)  # fmt: skip

    async def _check_hub(self) -> None:
        """Say at start whether the hub answers, so that a wrong ``hub_endpoint`` or an
        unreachable hub shows in the log before there is anything to send."""
        config, stub = self.config, health_pb2_grpc.HealthStub(self.channel)
        request = health_pb2.HealthCheckRequest(service=HUB_SERVICE)
        try:
            await stub.Check(request, timeout=config.delivery.rpc_timeout_seconds)
        except grpc.aio.AioRpcError as error:
            log.warning("the hub %s at %s does not answer (%s: %s); messages to it wait in "
                        "the outbox", config.hub_id, config.hub_endpoint, error.code().name,
                        error.details(), extra={"peer": config.hub_id})  # fmt: skip
            return
        log.info("the hub %s at %s answers", config.hub_id, config.hub_endpoint,
                 extra={"peer": config.hub_id})  # fmt: skip

    async def stop(self) -> None:
        """Graceful: stop taking calls, let calls in flight finish, stop the loops, close."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace=5)
        self.stopping.set()
        if self._hub_check is not None:
            self._hub_check.cancel()
            self._tasks.append(self._hub_check)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.channels.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        self.writer.close()
        self._lock.release()
        log.info("registry %s stopped", self.config.registry_id)


async def until_signalled() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def serve(config: RegistryConfig, rules: Rules, tables: Sequence[Schema] = ()) -> None:
    node = RegistryNode(config, rules, tables)
    await node.start()
    await node.serving()
    await until_signalled()
    await node.stop()
