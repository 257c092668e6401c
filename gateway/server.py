"""The hub process: the composition root that wires config, storage, services and loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import _async as health_aio  # what `health.aio` re-exports
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from article6.keys import SigningKey, read_key_file
from article6.limits import ADMIN_MAX_MESSAGE_BYTES, RUN_MAX_SECONDS, SHUTDOWN_GRACE_SECONDS
from article6.metrics import serve_metrics
from article6.outbox import release_claims
from article6.process import DatabaseLock, listen, lock_database, raise_fd_limit
from article6.pump import Channels, GrpcTransport, pause
from article6.refusals import RefusalLog, heard_by
from article6.service import server_options
from article6.sql import shown_url
from article6.tls import TlsMaterial, server_credentials
from article6.v1 import admin_pb2, admin_pb2_grpc, hub_pb2
from gateway.admin import AdminService
from gateway.checks import Peer
from gateway.config import HubConfig, RegistryEntry
from gateway.delivery import Deliverer, expire_loop
from gateway.hub_service import HubService
from gateway.lifecycle import Lifecycle
from gateway.mailer import Mailer
from gateway.metrics import HubMetrics
from gateway.reconciler import Reconciler
from gateway.storage import audit
from gateway.storage import reconciliations as runs
from gateway.storage.database import Database
from gateway.storage.records import suspended_overrides
from gateway.storage.schema import outbox

log = logging.getLogger("gateway.server")
HUB_SERVICE = hub_pb2.DESCRIPTOR.services_by_name["Hub"].full_name
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


class Hub:
    """One hub process: the Hub and admin servers, the delivery and time-out loops."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.directory = read_key_file(config.keys)
        self.key = SigningKey.from_pem(config.signing_key.read_bytes())
        self.tls = TlsMaterial.from_paths(
            config.ca_certificate, config.tls_certificate, config.tls_key
        )
        self.database = Database(config.database, signer=self.key)
        self._registries: dict[str, RegistryEntry] = dict(config.registries)
        self._peers: dict[str, Peer] = {}
        self.metrics_registry = CollectorRegistry()
        self.metrics = HubMetrics(self.metrics_registry, self.database)
        self._metrics_server: Any = None
        self._lock = DatabaseLock(None)
        self.mailer = Mailer(config.registry_id, self.key)
        timeout = _seconds(config.acceptance_timeout_seconds)
        self.lifecycle = Lifecycle(
            self.mailer, timeout, on_final=self.metrics.finished, policy=config.policy
        )
        # One channel per registry, shared by deliveries and reconciliation.
        self.channels = Channels(
            lambda registry: self.registries()[registry].endpoint, self.tls,
            config.delivery.backoff_max_seconds,
        )  # fmt: skip
        transport = GrpcTransport(self.channels.get, "article6.v1.Registry", "DeliverBatch")
        self.deliverer = Deliverer(
            config.delivery, self.database, self.lifecycle, self.mailer,
            self.directory, transport, self.registries, self.metrics,
        )  # fmt: skip
        self.reconciler = Reconciler(
            self.database, self.mailer, self.directory, self.channels.get,
            self.metrics.reconciled,
        )  # fmt: skip
        self.hub_service = HubService(
            config.registry_id, self.directory, self.database, self.lifecycle, self.mailer,
            self.peers, heard_by(self.metrics.rpc.refused, RefusalLog(log, inbound=True)),
        )  # fmt: skip
        self.health = health_aio.HealthServicer()
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._servers: list[grpc.aio.Server] = []

    def registries(self) -> dict[str, RegistryEntry]:
        """The directory with each registry's current standing."""
        return self._registries

    def peers(self) -> Mapping[str, Peer]:
        """What the checks need of each registry."""
        return self._peers

    def reload_status(self) -> None:
        """Derive the directory again after its standing changed (start, operator action);
        requests read the derived copies rather than rebuilding them each time."""
        overrides = self.database.read_now(suspended_overrides)
        self._registries = {
            registry_id: replace(entry, suspended=overrides.get(registry_id, entry.suspended))
            for registry_id, entry in self.config.registries.items()
        }
        self._peers = {
            registry_id: Peer(
                registry_id, entry.cooperative_approaches, entry.suspended, entry.kind, entry.party
            )
            for registry_id, entry in self._registries.items()
        }

    def _key_ids(self, registry: str) -> list[str]:
        return sorted(key.key_id for key in self.directory.keys_of(registry))

    async def start(self) -> None:
        """Open the database and serve the Hub and Admin services. Health says NOT_SERVING
        until both ports are open and delivery runs: whoever waits for health (the network,
        a process manager) then finds every port open. gRPC's servicer says SERVING for ""
        from its construction, so that is set back first."""
        for service in ("", HUB_SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._lock = lock_database(self.config.database, f"hub {self.config.registry_id}")
        raise_fd_limit()
        # The metrics port first: one that is taken stops the hub before anything is changed.
        if self.config.metrics_listen:
            self._metrics_server = serve_metrics(self.config.metrics_listen, self.metrics_registry)
        self.database.migrate()
        self.reload_status()
        now = datetime.now(UTC)
        # One process per SQLite file: every run still open is a stopped process's, and its
        # registry's proposals may be held. Other hubs on PostgreSQL may be running theirs.
        sqlite = self.database.dialect == "sqlite"
        stale = now if sqlite else now - timedelta(seconds=RUN_MAX_SECONDS)
        self.database.write_now(lambda unit: runs.close_stale_runs(unit, stale, now))
        if sqlite:  # and its claims are ours
            self.database.write_now(lambda unit: release_claims(unit.connection, outbox))
        credentials = server_credentials(self.tls)
        interceptors = [self.metrics.rpc.interceptor()]
        options = server_options(
            handshake_seconds=self.config.handshake_timeout_seconds,
            max_connections=self.config.max_connections,
        )
        hub_server = grpc.aio.server(options=options, interceptors=interceptors)
        hub_server.add_generic_rpc_handlers([self.hub_service.handler(self.config.rate_limiter())])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, hub_server)
        reflection.enable_server_reflection(
            [HUB_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], hub_server
        )
        listen(hub_server, self.config.listen, credentials)
        admin_options = server_options(
            max_bytes=ADMIN_MAX_MESSAGE_BYTES,
            handshake_seconds=self.config.handshake_timeout_seconds,
            max_connections=self.config.max_connections,
        )
        admin_server = grpc.aio.server(options=admin_options, interceptors=interceptors)
        admin = AdminService(
            self.database, self.config.admin_identities, self.registries, self._key_ids,
            self._admin_changed, self.reconciler.run,
            audit.signed_by_hub(self.directory, self.config.registry_id),
        )  # fmt: skip
        admin_pb2_grpc.add_AdminServiceServicer_to_server(admin, admin_server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, admin_server)
        reflection.enable_server_reflection([ADMIN_SERVICE, health.SERVICE_NAME], admin_server)
        listen(admin_server, self.config.admin_listen, credentials)
        for server in (hub_server, admin_server):
            await server.start()
            self._servers.append(server)
        self._tasks = [
            asyncio.create_task(self.deliverer.run(self.stopping), name="delivery"),
            asyncio.create_task(
                expire_loop(self.database, self.lifecycle, self.deliverer.wake, self.stopping),
                name="time-outs",
            ),
        ]
        interval = self.config.reconciliation_interval_seconds
        if interval > 0:
            self._tasks.append(
                asyncio.create_task(self._reconcile_every(interval), name="reconciliation")
            )
        for service in ("", HUB_SERVICE):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        config = self.config
        log.info("hub %s serving on %s, admin on %s, metrics on %s, database %s",
                 config.registry_id, config.listen, config.admin_listen,
                 config.metrics_listen or "(none)", shown_url(config.database))  # fmt: skip

    async def _reconcile_every(self, interval: float) -> None:
        """Reconcile each registry in the directory in turn, one every ``interval`` seconds
        (suspended registries are skipped; a denied start is tried again next round)."""
        while not self.stopping.is_set():
            for registry, entry in sorted(self.registries().items()):
                await pause(self.stopping, interval)
                if self.stopping.is_set():
                    return
                if entry.suspended:
                    continue
                try:
                    await self.reconciler.run(registry)
                except Exception:  # the loop must outlive any one failure
                    log.exception("reconciliation with %s failed", registry)

    def reload_keys(self) -> None:
        """Read the key file again (SIGHUP): how a rotated key is published to a running hub.
        A file that does not parse leaves the directory as it was."""
        try:
            fresh = read_key_file(self.config.keys)
        except (OSError, ValueError, KeyError) as error:
            log.error("key file %s not reloaded: %s", self.config.keys, error)
            return
        self.directory.replace(fresh)
        log.warning("key file reloaded: %d keys", len(fresh.all()))

    def _admin_changed(self) -> None:
        self.reload_status()
        self.deliverer.wake()

    async def stop(self) -> None:
        """Graceful: stop taking calls, let calls in flight finish, stop the loops, close."""
        await self.health.enter_graceful_shutdown()
        for server in self._servers:
            await server.stop(grace=SHUTDOWN_GRACE_SECONDS)
        self.stopping.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.channels.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        self.database.close()
        self._lock.release()
        log.info("hub %s stopped", self.config.registry_id)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


async def serve(config: HubConfig) -> None:
    hub = Hub(config)
    await hub.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hub.reload_keys)
    await stop.wait()
    await hub.stop()
