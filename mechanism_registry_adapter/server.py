"""The adapter process: the mechanism registry's node (Registry service for the hub, its
outbox and recovery) and the intake service on its own port (``[mechanism] intake_listen``)."""

from __future__ import annotations

import grpc.aio

from article6.node.config import RegistryConfig
from article6.node.server import RegistryNode, until_signalled
from article6.process import listen
from article6.service import server_options
from article6.tls import server_credentials
from article6.v1 import mechanism_pb2_grpc as mechanism_grpc
from mechanism_registry_adapter import book
from mechanism_registry_adapter.intake import Intake, Settings
from mechanism_registry_adapter.metrics import InstructionCollector
from mechanism_registry_adapter.rules import MechanismRules
from mechanism_registry_adapter.service import IntakeService


async def serve(config: RegistryConfig) -> None:
    settings = Settings.from_config(config)
    table = config.document.get("mechanism", {})
    node = RegistryNode(config, MechanismRules(settings), (book.metadata,))
    intake = Intake(node.registry, settings)
    node.metrics_registry.register(InstructionCollector(node.writer.engine))
    await node.start()
    server = grpc.aio.server(
        options=server_options(), interceptors=[node.metrics.rpc.interceptor()]
    )
    callers = frozenset(table.get("intake_identities", ["OPERATOR"]))
    mechanism_grpc.add_MechanismIntakeServiceServicer_to_server(
        IntakeService(intake, node.writer, callers), server
    )
    listen(server, table["intake_listen"], server_credentials(node.tls))
    await server.start()
    await node.serving()
    await until_signalled()
    await server.stop(grace=5)
    await node.stop()
