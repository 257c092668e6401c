"""A whole network on loopback, as real processes: the hub and Party registries.

Used by ``make demo`` and by the end-to-end tests. It writes a PKI and config files into a
folder, starts each component as its own process (``python -m gateway`` /
``python -m party_registry_stub``), waits for gRPC health over mutual TLS, and can stop
(SIGTERM), kill (SIGKILL) and restart any of them. It talks to the components only through
their command lines and gRPC, never by importing them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from article6.pki import RegistryFiles, init_pki
from article6.tls import TlsMaterial, channel_credentials, channel_options
from article6.v1 import admin_pb2_grpc, mechanism_pb2_grpc

OPERATOR = "OPERATOR"
HUB = "HUB"
PARTIES = {"GHA01": "GHA", "CHE01": "CHE", "SGP01": "SGP"}
INTERNATIONAL = "UNIR"  # the international registry (with its ARS): many Parties' sections
MECHANISM = "A64MR"  # the Article 6.4 mechanism registry, through its adapter
FEED = "A64FEED"  # the mechanism registry's own system, calling the adapter's intake
MECHANISM_APPROACH = "CA6400"  # the cooperative approach ITMOs from A6.4ERs are recorded under
SECRETARIAT = "officer@unfccc.example"  # the portal's secretariat officer in the demo
MODULES = {INTERNATIONAL: "international_registry", MECHANISM: "mechanism_registry_adapter"}
KINDS = {INTERNATIONAL: "international", MECHANISM: "mechanism"}


def module(registry: str) -> str:
    """The package that runs a registry, and its command line."""
    return MODULES.get(registry, "party_registry_stub")


def kind(registry: str) -> str:
    return KINDS.get(registry, "party")


def party(registry: str) -> str:
    """The Party a Party registry acts for (its id's letters); none for the IR and mechanism."""
    return PARTIES.get(registry, registry[:3] if kind(registry) == "party" else "")


_HANDED_OUT: set[int] = set()


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux; 32768 elsewhere)."""
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    return int(ranges.read_text().split()[0]) if ranges.exists() else 32768


def free_port() -> int:
    """A loopback port free to listen on, chosen below the ephemeral range: a port the kernel
    would hand out (bind to 0) can be taken by any outgoing connection before our server binds
    it, while ports below that range are only ever taken by listeners."""
    floor = _ephemeral_floor()
    for _ in range(200):
        port = random.randrange(10_000, floor)  # noqa: S311 (a port number, not a secret)
        if port in _HANDED_OUT:  # chosen already, perhaps not bound yet
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


@dataclass
class Component:
    name: str
    command: list[str]
    endpoint: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    identity: str = ""  # its TLS identity, when not its name (a second hub is still HUB)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Network:
    """A network of one hub and some Party registries under ``folder``."""

    folder: Path
    registries: tuple[str, ...] = ("GHA01", "CHE01")
    database: str = "hub.db"
    acceptance_timeout_seconds: float = 60.0
    reconciliation_interval_seconds: float = 0.0  # the hub's scheduler (0: operators only)
    delivery: dict[str, Any] = field(default_factory=lambda: {"backoff_max_seconds": 2.0})
    hub_settings: dict[str, Any] = field(default_factory=dict)  # more [hub] keys
    components: dict[str, Component] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # component -> host:port of /metrics
    standing: set[str] = field(default_factory=set)  # registries whose STANDING is recorded

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pki = self.folder / "pki"
        self.logs = self.folder / "logs"
        self.logs.mkdir(exist_ok=True)

    # --- set-up --------------------------------------------------------------------------

    def write(self) -> None:
        """Write the PKI and every component's config."""
        init_pki(self.pki, [HUB, OPERATOR, FEED, *self.registries])
        hub_port, admin_port = free_port(), free_port()
        self.ir_admin_endpoint = f"127.0.0.1:{free_port()}"
        self.intake_endpoint = f"127.0.0.1:{free_port()}"
        self.portal_url, self.smtp_port = f"http://127.0.0.1:{free_port()}", free_port()
        ports = {registry: free_port() for registry in self.registries}
        self.metrics = {name: f"127.0.0.1:{free_port()}" for name in (HUB, *self.registries)}
        self._write_hub(hub_port, admin_port, ports)
        for registry, port in ports.items():
            self._write_registry(registry, port, hub_port)
        self._components(hub_port, admin_port, ports)

    def load(self) -> None:
        """Take up a network written before (by ``write``) in this folder, to start it again."""
        hub = tomllib.loads((self.folder / "hub.toml").read_text())["hub"]
        configs = {r: tomllib.loads(self.config(r).read_text()) for r in self.registries}
        self.metrics = {HUB: hub["metrics_listen"]} | {
            r: c["registry"]["metrics_listen"] for r, c in configs.items()
        }
        ports = {r: _port(c["registry"]["listen"]) for r, c in configs.items()}
        if "portal" in configs.get(INTERNATIONAL, {}):
            portal = configs[INTERNATIONAL]["portal"]
            self.portal_url, self.smtp_port = portal["public_url"], portal["smtp_port"]
        self._components(_port(hub["listen"]), _port(hub["admin_listen"]), ports)

    def _components(self, hub_port: int, admin_port: int, ports: dict[str, int]) -> None:
        python = [sys.executable, "-m"]
        self.components[HUB] = Component(
            HUB, [*python, "gateway", "serve", "--config", str(self.folder / "hub.toml")],
            f"127.0.0.1:{hub_port}", self.logs / "hub.log",
        )  # fmt: skip
        self.admin_endpoint = f"127.0.0.1:{admin_port}"
        for registry, port in ports.items():
            config = str(self.config(registry))
            self.components[registry] = Component(
                registry, [*python, module(registry), "serve", "--config", config],
                f"127.0.0.1:{port}", self.logs / f"{registry.lower()}.log",
            )  # fmt: skip

    def add_hub(self, name: str) -> Component:
        """Another hub process on the same database (PostgreSQL): the first hub's config with
        its own ports. Start it with ``start(name)``; ``point`` sends a registry to it."""
        text = (self.folder / "hub.toml").read_text()
        ports = {key: f"127.0.0.1:{free_port()}" for key in ("listen", "admin_listen")}
        self.metrics[name] = f"127.0.0.1:{free_port()}"
        for key, value in (*ports.items(), ("metrics_listen", self.metrics[name])):
            text = re.sub(rf'^{key} = ".*"$', f'{key} = "{value}"', text, flags=re.MULTILINE)
        config = self.folder / f"hub-{name.lower()}.toml"
        config.write_text(text)
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
        log = self.logs / f"hub-{name.lower()}.log"
        self.components[name] = Component(name, command, ports["listen"], log, identity=HUB)
        return self.components[name]

    def point(self, registry: str, hub: str) -> None:
        """Make ``registry`` send to ``hub`` (takes effect when it next starts)."""
        endpoint = self.components[hub].endpoint
        path = self.config(registry)
        text = re.sub(r'^hub_endpoint = ".*"$', f'hub_endpoint = "{endpoint}"',
                      path.read_text(), flags=re.MULTILINE)  # fmt: skip
        path.write_text(text)

    def config(self, registry: str) -> Path:
        return self.folder / f"{registry.lower()}.toml"

    def _tls_lines(self, identity: str) -> str:
        return (
            f'ca_certificate = "pki/ca.crt"\n'
            f'tls_certificate = "pki/{identity}/tls.crt"\n'
            f'tls_key = "pki/{identity}/tls.key"\n'
            f'signing_key = "pki/{identity}/signing.key"\n'
            f'keys = "pki/keys.toml"\n'
        )

    def _write_hub(self, hub_port: int, admin_port: int, ports: dict[str, int]) -> None:
        delivery = "".join(f"{key} = {json.dumps(value)}\n" for key, value in self.delivery.items())
        extra = "".join(
            f"{key} = {json.dumps(value)}\n" for key, value in self.hub_settings.items()
        )
        registries = "".join(
            f'\n[[registries]]\nregistry_id = "{registry}"\nkind = "{kind(registry)}"\n'
            f'endpoint = "127.0.0.1:{port}"\ncooperative_approaches = {_approaches(registry)}\n'
            for registry, port in ports.items()
        )
        (self.folder / "hub.toml").write_text(
            f'[hub]\nregistry_id = "{HUB}"\nlisten = "127.0.0.1:{hub_port}"\n'
            f'admin_listen = "127.0.0.1:{admin_port}"\ndatabase = "{self.database}"\n'
            f'metrics_listen = "{self.metrics[HUB]}"\n'
            f'{self._tls_lines(HUB)}admin_identities = ["{OPERATOR}"]\n'
            f"acceptance_timeout_seconds = {self.acceptance_timeout_seconds}\n"
            f"reconciliation_interval_seconds = {self.reconciliation_interval_seconds}\n"
            f"{extra}\n[delivery]\n{delivery}{registries}"
        )

    def _write_registry(self, registry: str, port: int, hub_port: int) -> None:
        self.config(registry).write_text(
            f'[registry]\nregistry_id = "{registry}"\nparty = "{party(registry)}"\n'
            f'listen = "127.0.0.1:{port}"\ndatabase = "{registry.lower()}.db"\n'
            f'hub_id = "{HUB}"\nhub_endpoint = "127.0.0.1:{hub_port}"\n'
            f'metrics_listen = "{self.metrics[registry]}"\n'
            f"{self._tls_lines(registry)}"
            "\n[delivery]\nbackoff_max_seconds = 2.0\nrecovery_interval_seconds = 1.0\n"
            "recovery_after_seconds = 5.0\n" + self._own_table(registry)
        )

    def _own_table(self, registry: str) -> str:
        """The international registry's table (the secretariat's admin port), or the
        mechanism adapter's (its intake port, and where it reads the IR's intake)."""
        if registry == INTERNATIONAL:
            (self.folder / "portal.key").write_text(secrets.token_urlsafe(48))
            return (
                f'\n[international]\nadmin_listen = "{self.ir_admin_endpoint}"\n'
                f'admin_identities = ["{OPERATOR}"]\nintake_readers = ["{MECHANISM}"]\n'
                f'\n[portal]\nlisten = "{self.portal_url.removeprefix("http://")}"\n'
                f'public_url = "{self.portal_url}"\nsecret_key_file = "portal.key"\n'
                f'documents_folder = "portal-documents"\nsecretariat = ["{SECRETARIAT}"]\n'
                f'smtp_host = "127.0.0.1"\nsmtp_port = {self.smtp_port}\n'
                'mail_from = "international-registry@unfccc.example"\n'
                "cookie_secure = false  # plain HTTP on loopback: the demo only\n"
            )
        if registry == MECHANISM:
            return (
                f'\n[mechanism]\nintake_listen = "{self.intake_endpoint}"\n'
                f'intake_identities = ["{FEED}", "{OPERATOR}"]\n'
                f'cooperative_approach = "{MECHANISM_APPROACH}"\n'
                f'default_acquiring_registry = "{INTERNATIONAL}"\n'
                f'ir_admin_endpoint = "{self.ir_admin_endpoint}"\n'
                f'ir_registry_id = "{INTERNATIONAL}"\n'
            )
        return ""

    # --- processes -----------------------------------------------------------------------

    def start(self, name: str, timeout: float = 30.0) -> None:
        component = self.components[name]
        assert not component.running, f"{name} is already running"
        log = component.log.open("ab")
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        component.process = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
            component.command, stdout=log, stderr=log, cwd=self.folder, env=environment
        )
        log.close()
        self.wait_healthy(name, timeout)

    @contextlib.contextmanager
    def running(self) -> Iterator[Network]:
        """Write the network's files and start every component; stop them all on the way
        out, also when one of them fails to start."""
        self.write()
        try:
            self.start_all()
            yield self
        finally:
            self.stop_all()

    def start_all(self) -> None:
        self.start(HUB)
        for registry in self.registries:
            self.start(registry)

    def stop(self, name: str, kill: bool = False, timeout: float = 20.0) -> int | None:
        """SIGTERM (a graceful stop) or SIGKILL (a crash), wait for the process to end, and
        return its exit code (None if it was not running)."""
        component = self.components[name]
        if component.process is None:
            return None
        if component.process.poll() is None:
            component.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            code = component.process.wait(timeout)
        except subprocess.TimeoutExpired:
            component.process.kill()
            code = component.process.wait()
        component.process = None
        return code

    def stop_all(self) -> dict[str, int | None]:
        """Stop every component gracefully, registries first; their exit codes by name."""
        return {name: self.stop(name) for name in reversed(list(self.components))}

    def operator_tls(self) -> TlsMaterial:
        return TlsMaterial.load(RegistryFiles(self.pki, OPERATOR))

    def wait_healthy(self, name: str, timeout: float = 30.0) -> None:
        component = self.components[name]
        deadline = time.monotonic() + timeout
        credentials = channel_credentials(self.operator_tls())
        with grpc.secure_channel(
            component.endpoint, credentials, options=channel_options(component.identity or name)
        ) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if not component.running:
                    raise RuntimeError(f"{name} exited; see {component.log}")
                with contextlib.suppress(grpc.RpcError):
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                time.sleep(0.1)
        raise TimeoutError(f"{name} not healthy within {timeout} s; see {component.log}")

    # --- talking to the components -------------------------------------------------------

    def registry_cli(self, registry: str, *args: str, check: bool = True) -> str:
        command = [sys.executable, "-m", module(registry), args[0],
                   "--config", str(self.config(registry)), *args[1:]]  # fmt: skip
        done = subprocess.run(  # noqa: S603 (our own module, fixed arguments)
            command, capture_output=True, text=True, cwd=self.folder, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def admin_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The operators' command line (article6-admin) against the hub's admin port."""
        command = [sys.executable, "-m", "gateway.admin_cli", "--endpoint", self.admin_endpoint,
                   "--pki", str(self.pki), *args]  # fmt: skip
        return subprocess.run(  # noqa: S603 (our own module, fixed arguments)
            command, capture_output=True, text=True, cwd=self.folder, check=False, timeout=120
        )

    def wait_final(self, registry: str, transaction_id: str, timeout: float = 60.0) -> str:
        """``wait``'s line for a transaction's final status in ``registry``'s books (it exits
        1 for any status but completed: the line is what is wanted here)."""
        line = self.registry_cli(registry, "wait", transaction_id, "--timeout", str(timeout),
                                 check=False)  # fmt: skip
        if not line:
            raise RuntimeError(f"{transaction_id}: no final status in {registry} in {timeout} s")
        return line

    def scrape(self, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """One scrape of a component's /metrics: (sample name, sorted labels) -> value."""
        url = f"http://{self.metrics[name]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def standing_authorization(self, registry: str) -> str:
        """The id of the registry's ``<PARTY>-STANDING`` authorization (CA0001, NDC and OIMP,
        first transfer for OIMP at issuance, vintages 2021-2030), recorded at the hub once."""
        authorization = f"{party(registry)}-STANDING"
        if registry not in self.standing:
            granted = self.registry_cli(
                registry, "authorize", "--authorization-id", authorization, "--ca", "CA0001",
                "--purpose", "ndc-and-oimp", "--definition", "issuance", "--vintages", "2021-2030",
            )  # fmt: skip
            line = self.wait_final(registry, granted, 120)
            if line.split()[1] != "completed":
                raise RuntimeError(f"{authorization} not recorded: {line}")
            self.standing.add(registry)
        return authorization

    def issue_itmos(self, registry: str, account: str, serials: str, vintage: int = 2024) -> str:
        """Issue ITMOs the one way an issuance may create them: as the first transfer of an
        authorization that defines issuance so (for OIMP; it covers use towards an NDC too).
        The registry's ``<PARTY>-STANDING`` authorization is recorded first, once. Returns the
        issuance's transaction id, not yet waited for."""
        authorization = self.standing_authorization(registry)
        return self.registry_cli(
            registry, "issue", "--kind", "itmo", "--account", account, "--ca", "CA0001",
            "--purpose", "ndc-and-oimp", "--authorization", authorization,
            "--vintage", str(vintage), "--serials", serials,
        )  # fmt: skip

    def registry_json(self, registry: str, *args: str) -> Any:
        return json.loads(self.registry_cli(registry, *args, "--json"))

    @contextlib.contextmanager
    def intake(self) -> Iterator[mechanism_pb2_grpc.MechanismIntakeServiceStub]:
        """The mechanism adapter's intake service, as the mechanism registry calls it."""
        credentials = channel_credentials(TlsMaterial.load(RegistryFiles(self.pki, FEED)))
        with grpc.secure_channel(
            self.intake_endpoint, credentials, options=channel_options(MECHANISM)
        ) as channel:
            yield mechanism_pb2_grpc.MechanismIntakeServiceStub(channel)

    @contextlib.contextmanager
    def admin(self) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
        credentials = channel_credentials(self.operator_tls())
        with grpc.secure_channel(
            self.admin_endpoint, credentials, options=channel_options(HUB)
        ) as channel:
            yield admin_pb2_grpc.AdminServiceStub(channel)


def _toml_lines(settings: dict[str, Any]) -> str:
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _approaches(registry: str) -> str:
    """The cooperative approaches a registry may issue under, as TOML."""
    return f'["{MECHANISM_APPROACH}"]' if registry == MECHANISM else '["CA0001", "CA0002"]'
