"""Ways to spoil a valid message, from blind byte damage to well-signed hostile content.

Each mutator takes the seeded ``random.Random`` and returns the bytes to send plus whether
they carry a valid signature by an authenticated registry (re-signed mutations model a
registry that is who it says it is and sends anything at all).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from article6.envelope import seal, sign_envelope
from article6.keys import SigningKey

# Values that break assumptions: bounds of the wire integer types, signs, empties, oversizes.
INTEGERS = [0, 1, -1, 2**31 - 1, -(2**31), 2**32 - 1, 2**53 + 1, 2**62, 2**63 - 1, -(2**63),
            2**64 - 1, 999, 10**9, 10**12]  # fmt: skip
STRINGS = ["", " ", "GHA01", "CHE01", "HUB", "XYZ01", "GHA01-1", "GHA01-1001-00", "\x00",
           "é" * 40, "A" * 300, "../../etc", "GHA01-99999999999999999999", "CA0001", "2024",
           "' OR 1=1 --", "\ud7ff" * 3, "GHA"]  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    raw: bytes
    signed: bool  # a valid signature by the sender over what it carries
    how: str


Mutator = Callable[[random.Random, Message, SigningKey], Mutant]


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
    return bytes(buffer)


def _splice(rng: random.Random, data: bytes) -> bytes:
    """Insert, delete, duplicate or truncate a stretch of bytes."""
    if not data:
        return rng.randbytes(rng.randint(1, 64))
    at = rng.randrange(len(data))
    span = rng.randint(1, max(1, len(data) // 4))
    choice = rng.randrange(4)
    if choice == 0:
        return data[:at] + rng.randbytes(span) + data[at:]
    if choice == 1:
        return data[:at] + data[at + span :]
    if choice == 2:
        return data[:at] + data[at : at + span] * rng.randint(2, 50) + data[at:]
    return data[:at]


def bytes_of_envelope(rng: random.Random, message: Message, key: SigningKey) -> Mutant:
    """Damage the serialized envelope itself."""
    raw = seal(message, [key]).SerializeToString()
    damaged = _flip(rng, raw) if rng.random() < 0.5 else _splice(rng, raw)
    return Mutant(damaged, False, "envelope bytes")


def random_bytes(rng: random.Random, message: Message, key: SigningKey) -> Mutant:
    size = rng.choice([0, 1, 2, 5, 17, 100, 1000, 70_000])
    return Mutant(rng.randbytes(size), False, "random bytes")


def payload_unsigned(rng: random.Random, message: Message, key: SigningKey) -> Mutant:
    """Change the payload after signing: the signature no longer covers it."""
    envelope = seal(message, [key])
    envelope.payload = _flip(rng, envelope.payload)
    return Mutant(envelope.SerializeToString(), False, "payload after signing")


def payload_resigned(rng: random.Random, message: Message, key: SigningKey) -> Mutant:
    """Damage the payload bytes, then sign them: authenticated garbage."""
    payload = message.SerializeToString(deterministic=True)
    damaged = _flip(rng, payload) if rng.random() < 0.5 else _splice(rng, payload)
    envelope = sign_envelope(message.DESCRIPTOR.full_name, damaged, [key])
    return Mutant(envelope.SerializeToString(), True, "payload bytes, re-signed")


def fields_resigned(rng: random.Random, message: Message, key: SigningKey) -> Mutant:
    """Structure-aware: set fields anywhere in the message to hostile values, then sign."""
    mutated = type(message)()
    mutated.CopyFrom(message)
    for _ in range(rng.randint(1, 4)):
        _mutate_field(rng, mutated)
    if rng.random() < 0.1:  # unknown fields, which a receiver must carry or ignore
        payload = mutated.SerializeToString() + bytes([0xF8, 0x7F]) + rng.randbytes(4)
        envelope = sign_envelope(message.DESCRIPTOR.full_name, payload, [key])
        return Mutant(envelope.SerializeToString(), True, "unknown field, re-signed")
    return Mutant(seal(mutated, [key]).SerializeToString(), True, "fields, re-signed")


def envelope_fields(rng: random.Random, message: Message, key: SigningKey) -> Mutant:
    """Well-formed envelopes with wrong parts: type, signature list, key ids."""
    envelope = seal(message, [key])
    choice = rng.randrange(5)
    if choice == 0:
        envelope.payload_type = rng.choice([*STRINGS, "article6.v1.StatusNotice"])
    elif choice == 1:
        del envelope.signatures[:]
    elif choice == 2:
        envelope.signatures.extend([envelope.signatures[0]] * rng.randint(1, 6))
    elif choice == 3:
        envelope.signatures[0].key_id = rng.choice(["", "00" * 32, "zz", "A" * 64])
    else:
        envelope.signatures[0].sig = rng.randbytes(rng.choice([0, 63, 64, 65]))
    return Mutant(envelope.SerializeToString(), False, "envelope fields")


def _mutate_field(rng: random.Random, message: Message) -> None:
    """Pick a field somewhere in the message tree and give it a hostile value."""
    target = message
    for _ in range(4):  # walk down a few levels of set sub-messages
        children = [
            (descriptor, value)
            for descriptor, value in target.ListFields()
            if descriptor.message_type is not None
        ]
        if not children or rng.random() < 0.4:
            break
        descriptor, value = rng.choice(children)
        if descriptor.is_repeated:
            if not value:
                break
            if rng.random() < 0.2:  # many copies: size and count limits
                value.extend([value[0]] * rng.choice([1, 10, 1500]))
                return
            target = rng.choice(list(value))
        else:
            target = value
    fields = [f for f in target.DESCRIPTOR.fields if f.message_type is None]
    if not fields:
        return
    field = rng.choice(fields)
    _set(rng, target, field)


def _set(rng: random.Random, target: Message, field: Any) -> None:
    value: object
    if field.type == FieldDescriptor.TYPE_STRING:
        value = rng.choice(STRINGS)
    elif field.type == FieldDescriptor.TYPE_BYTES:
        value = rng.randbytes(rng.choice([0, 1, 31, 32, 33, 64, 1000]))
    elif field.type == FieldDescriptor.TYPE_BOOL:
        value = rng.random() < 0.5
    elif field.type == FieldDescriptor.TYPE_ENUM:
        value = rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 9, 99, -1, 2**31 - 1])
    else:
        value = rng.choice(INTEGERS)
    try:
        if field.is_repeated:
            getattr(target, field.name).append(value)
        else:
            setattr(target, field.name, value)
    except (ValueError, TypeError):  # out of the field's range: the wire can't carry it
        return


MUTATORS: list[tuple[Mutator, float]] = [
    (bytes_of_envelope, 0.25),
    (random_bytes, 0.05),
    (payload_unsigned, 0.15),
    (envelope_fields, 0.10),
    (payload_resigned, 0.15),
    (fields_resigned, 0.30),
]


def mutate(rng: random.Random, message: Message, key: SigningKey) -> Mutant:
    mutators, weights = zip(*MUTATORS, strict=True)
    mutator: Mutator = rng.choices(mutators, weights)[0]
    return mutator(rng, message, key)
