"""The baseline: a bare grpc.aio unary echo over loopback with the project's mutual TLS.

No signing, no storage: the floor every other figure is compared with. The server runs as its
own process (``python -m bench.echo``), as the hub does, and answers with the request's bytes.

    python -m bench.echo --pki FOLDER --port N
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc

from article6.pki import RegistryFiles, init_pki
from article6.service import grpc_message_options
from article6.tls import TlsMaterial, secure_channel, server_credentials
from bench.load import (
    CONCURRENCY,
    LATENCY_SECONDS,
    Run,
    closed_loop,
    open_loop,
)
from demo.network import free_port

SERVICE, METHOD = "article6.bench.Echo", "Echo"
PATH = f"/{SERVICE}/{METHOD}"
IDENTITY, CLIENT = "HUB", "GHA01"  # the certificates the hub and a registry present
REQUEST_BYTES = 700  # about a signed one-block proposal's size


async def _echo(request: bytes, context: Any) -> bytes:
    return request


def handler() -> grpc.GenericRpcHandler[bytes, bytes]:
    method = grpc.unary_unary_rpc_method_handler(_echo)  # no (de)serializers: raw bytes
    return grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})


async def serve(port: int, material: TlsMaterial) -> None:
    server = grpc.aio.server(options=grpc_message_options())
    server.add_generic_rpc_handlers((handler(),))
    server.add_secure_port(f"127.0.0.1:{port}", server_credentials(material))
    await server.start()
    await server.wait_for_termination()


async def _ready(call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]) -> None:
    for _ in range(200):
        try:
            await call(b"ready", timeout=1, wait_for_ready=True)
            return
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.1)
    raise TimeoutError("the echo server did not answer")


async def run(count: int, repeats: int) -> list[Run]:
    """``repeats`` closed-loop runs of ``count`` echoes, each followed by an open-loop run at
    half its rate, against an echo server in its own process."""
    with tempfile.TemporaryDirectory(prefix="a6-echo-") as folder:
        pki, port = Path(folder), free_port()
        init_pki(pki, [IDENTITY, CLIENT])
        command = [sys.executable, "-m", "bench.echo", "--pki", str(pki), "--port", str(port)]
        server = subprocess.Popen(command)  # noqa: S603 (our own module, fixed arguments)
        material = TlsMaterial.load(RegistryFiles(pki, CLIENT))
        channel = secure_channel(f"127.0.0.1:{port}", IDENTITY, material, grpc_message_options())
        try:
            call = channel.unary_unary(PATH, None, None)
            await _ready(call)
            request = bytes(REQUEST_BYTES)

            async def one(_: int) -> None:
                await call(request, timeout=60)

            await closed_loop(one, min(count, 500), CONCURRENCY)  # warm-up
            runs = []
            for _ in range(repeats):
                throughput = await closed_loop(one, count, CONCURRENCY)
                rate = throughput.per_second / 2
                paced = await open_loop(one, int(rate * LATENCY_SECONDS), rate)
                runs.append(Run(throughput, paced))
            return runs
        finally:
            await channel.close(grace=None)
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="the benchmark's echo server")
    parser.add_argument("--pki", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    material = TlsMaterial.load(RegistryFiles(Path(args.pki), IDENTITY))
    asyncio.run(serve(args.port, material))


if __name__ == "__main__":
    main()
