"""The international registry process: the shared registry node, the secretariat's admin
service on its own port (``[international] admin_listen``), and the Party-section portal on
its own address (``[portal] listen``)."""

from __future__ import annotations

import grpc.aio

from article6.node.config import RegistryConfig
from article6.node.server import RegistryNode, until_signalled
from article6.process import StartupError, listen
from article6.service import server_options
from article6.tls import server_credentials
from article6.v1 import international_registry_pb2_grpc as ir_grpc
from international_registry.admin import SecretariatService
from international_registry.portal.app import templates
from international_registry.portal.mail import Mailer
from international_registry.portal.server import start_portal
from international_registry.portal.settings import PortalConfigError, portal_settings
from international_registry.rules import from_config
from international_registry.schema import migrate

TABLES = (migrate,)  # the registry's own tables, by their migrations


async def serve(config: RegistryConfig) -> None:
    settings = config.document.get("international", {})
    rules = from_config(config)
    portal = None
    if "portal" in config.document:
        try:
            portal = portal_settings(config.document["portal"], config.base, config.registry_id)
        except PortalConfigError as error:
            raise StartupError(str(error)) from None
    node = RegistryNode(config, rules, TABLES)
    await node.start()
    try:
        web = await start_portal(portal, node.writer.run) if portal is not None else None
    except StartupError:
        await node.stop()
        raise
    admin: grpc.aio.Server | None = None
    if settings.get("admin_listen"):
        admin = grpc.aio.server(
            options=server_options(), interceptors=[node.metrics.rpc.interceptor()]
        )
        operators = frozenset(settings.get("admin_identities", ["OPERATOR"]))
        readers = frozenset(settings.get("intake_readers", []))
        mailer = Mailer(portal.smtp, templates()) if portal is not None else None
        service = SecretariatService(
            node.registry, node.writer, operators, rules.section_space, readers, mailer
        )
        ir_grpc.add_InternationalRegistryAdminServiceServicer_to_server(service, admin)
        listen(admin, settings["admin_listen"], server_credentials(node.tls))
        await admin.start()
    await node.serving()
    await until_signalled()
    if web is not None:
        await web.stop()
    if admin is not None:
        await admin.stop(grace=5)
    await node.stop()
