"""Serving the portal from the international registry's process: uvicorn on the portal's own
address, in the registry's event loop, stopped with it (the registry's own signal handling
stops everything, so uvicorn's is left out)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn

from article6.process import StartupError
from international_registry.portal.app import Portal, PortalSettings, Run, build_app


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the registry process handles SIGTERM and SIGINT for every server it runs


class PortalServer:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task[Any]) -> None:
        self.server, self.task = server, task

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(SystemExit):
            await self.task


async def start_portal(settings: PortalSettings, run: Run[Any]) -> PortalServer:
    """Serve the portal on ``settings.listen``; StartupError if it cannot."""
    host, _, port = settings.listen.rpartition(":")
    settings.documents_folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = uvicorn.Config(
        build_app(Portal(settings, run)), host=host, port=int(port), log_config=None,
        access_log=False, lifespan="off", server_header=False,
    )  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            with contextlib.suppress(SystemExit, Exception):
                task.result()
            raise StartupError(f"the portal cannot listen on {settings.listen}")
        await asyncio.sleep(0.02)
    return PortalServer(server, task)
