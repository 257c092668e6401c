"""The reference registry process: serves article6.v1.Registry, sends its outbox, recovers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc.aio
from grpc_health.v1 import _async as health_aio  # what `health.aio` re-exports
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from article6.keys import SigningKey, read_key_file
from article6.service import client_options, grpc_message_options
from article6.tls import TlsMaterial, secure_channel, server_credentials
from party_registry_stub.config import RegistryConfig
from party_registry_stub.registry import PartyRegistry
from party_registry_stub.sender import Sender
from party_registry_stub.service import RegistryService, Writer
from party_registry_stub.store import open_database

log = logging.getLogger("registry.server")
REGISTRY_SERVICE = "article6.v1.Registry"


def build_registry(config: RegistryConfig) -> tuple[PartyRegistry, SigningKey]:
    key = SigningKey.from_pem(config.signing_key.read_bytes())
    return PartyRegistry(config.registry_id, config.hub_id, key), key


async def serve(config: RegistryConfig) -> None:
    registry, key = build_registry(config)
    directory = read_key_file(config.keys)
    tls = TlsMaterial.from_paths(config.ca_certificate, config.tls_certificate, config.tls_key)
    writer = Writer(open_database(config.database))
    server = grpc.aio.server(options=grpc_message_options())
    server.add_generic_rpc_handlers([RegistryService(registry, directory, key, writer).handler()])
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [REGISTRY_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    server.add_secure_port(config.listen, server_credentials(tls))
    options = client_options(config.delivery.backoff_max_seconds)
    channel = secure_channel(config.hub_endpoint, config.hub_id, tls, options)
    sender = Sender(registry, config.delivery, writer, directory, key, channel)
    stopping = asyncio.Event()
    await server.start()
    tasks = [
        asyncio.create_task(sender.run(stopping), name="sender"),
        asyncio.create_task(sender.recover(stopping), name="recovery"),
    ]
    for service in ("", REGISTRY_SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("registry %s serving on %s", config.registry_id, config.listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=5)
    stopping.set()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await channel.close(grace=None)
    writer.close()
    log.info("registry %s stopped", config.registry_id)
