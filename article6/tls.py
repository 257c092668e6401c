"""Mutual-TLS credentials for gRPC servers and channels, and the peer's identity.

A registry's TLS identity is the common name of its client certificate, which equals its
registry id; servers require a client certificate signed by the network's CA. Channels verify
the server's certificate against the peer's registry id (the lowercased id is the certificate's
DNS name), so an endpoint can be a bare loopback address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from article6.pki import RegistryFiles


@dataclass(frozen=True, repr=False)
class TlsMaterial:
    """PEM bytes for one party: the CA to trust, its certificate and its private key."""

    ca_certificate: bytes
    certificate: bytes
    private_key: bytes

    @classmethod
    def load(cls, files: RegistryFiles) -> TlsMaterial:
        return cls(
            files.ca_certificate.read_bytes(),
            files.tls_certificate.read_bytes(),
            files.tls_key.read_bytes(),
        )

    @classmethod
    def from_paths(cls, ca: Path, certificate: Path, key: Path) -> TlsMaterial:
        return cls(ca.read_bytes(), certificate.read_bytes(), key.read_bytes())

    def __repr__(self) -> str:  # never show the private key
        return "TlsMaterial(<pem>)"


def server_credentials(material: TlsMaterial) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(material.private_key, material.certificate)],
        root_certificates=material.ca_certificate,
        require_client_auth=True,
    )


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca_certificate,
        private_key=material.private_key,
        certificate_chain=material.certificate,
    )


def channel_options(peer_registry: str) -> list[tuple[str, str]]:
    """Check the server's certificate against ``peer_registry`` whatever address is dialled."""
    return [("grpc.ssl_target_name_override", peer_registry.lower())]


def secure_channel(
    target: str,
    peer_registry: str,
    material: TlsMaterial,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        target,
        channel_credentials(material),
        options=[*channel_options(peer_registry), *options],
    )


def peer_identity(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The caller's registry id: the common name of its verified client certificate."""
    names = list(context.auth_context().get("x509_common_name", ()))
    if not names:
        return None
    name: bytes = names[0]
    return name.decode("utf-8", errors="replace")
