"""Conversions between the wire messages of ``article6.v1`` and the domain types of
``article6.model``. Values are copied as they are: validation is the checks' job, and an enum
number the domain does not know is refused here with the field's code."""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from article6.blocks import Block
from article6.codes import Code, Refusal
from article6.model import (
    AuthorizationSpec,
    AuthorizedEntity,
    FirstTransferSpec,
    FirstTransferTrigger,
    Held,
    Holder,
    LedgerBlock,
    Purpose,
    TransactionSpec,
    TransactionType,
    UnitAttributes,
    UnitBlock,
    UnitKind,
    UnitState,
    UseDetails,
)
from article6.reconciliation import Node
from article6.v1 import reconciliation_pb2, transaction_pb2, units_pb2

E = TypeVar("E", bound=IntEnum)


def enum_value(kind: type[E], value: int, code: Code, what: str) -> E:
    """An enum member from an untrusted number, or a refusal with the field's code."""
    try:
        return kind(value)
    except ValueError:
        raise Refusal(code, f"{what} {value} is not valid") from None


def unit_block(message: units_pb2.UnitBlock) -> UnitBlock:
    if message.serial_first > message.serial_last:
        raise Refusal(
            Code.SERIAL_RANGE_INVALID,
            f"serial_first {message.serial_first} > serial_last {message.serial_last}",
        )
    attributes = UnitAttributes(
        originating_registry=message.originating_registry,
        vintage=message.vintage,
        cooperative_approach=message.cooperative_approach,
        first_transferring_party=message.first_transferring_party,
        authorization_id=message.authorization_id,
        purpose=enum_value(Purpose, message.purpose, Code.REQUIRED_FIELD_MISSING, "purpose"),
        unit_kind=enum_value(UnitKind, message.unit_kind, Code.UNIT_KIND_INVALID, "unit kind"),
        state=enum_value(UnitState, message.state, Code.UNIT_STATE_INVALID, "unit state"),
        activity_id=message.activity_id,
        host_party=message.host_party,
        metric=message.metric,
    )
    return Block(message.serial_first, message.serial_last, attributes)


def unit_block_message(block: UnitBlock) -> units_pb2.UnitBlock:
    unit = block.attributes
    return units_pb2.UnitBlock(
        serial_first=block.serial_first,
        serial_last=block.serial_last,
        originating_registry=unit.originating_registry,
        vintage=unit.vintage,
        cooperative_approach=unit.cooperative_approach,
        first_transferring_party=unit.first_transferring_party,
        authorization_id=unit.authorization_id,
        purpose=units_pb2.Purpose.ValueType(unit.purpose.value),
        unit_kind=units_pb2.UnitKind.ValueType(unit.unit_kind.value),
        state=units_pb2.UnitState.ValueType(unit.state.value),
        activity_id=unit.activity_id,
        host_party=unit.host_party,
        metric=unit.metric,
    )


def held_block_message(block: LedgerBlock) -> units_pb2.HeldBlock:
    unit = Block(block.serial_first, block.serial_last, block.attributes.unit)
    return units_pb2.HeldBlock(
        block=unit_block_message(unit),
        registry=block.attributes.holder.registry,
        account_id=block.attributes.holder.account_id,
    )


def held_block(message: units_pb2.HeldBlock) -> LedgerBlock:
    unit = unit_block(message.block)
    holder = Holder(message.registry, message.account_id)
    return unit.with_attributes(Held(holder, unit.attributes))


def authorization_spec(granted: transaction_pb2.Authorization) -> AuthorizationSpec:
    return AuthorizationSpec(
        authorization_id=granted.authorization_id,
        authorizing_party=granted.authorizing_party,
        cooperative_approach=granted.cooperative_approach,
        purpose=enum_value(Purpose, granted.purpose, Code.REQUIRED_FIELD_MISSING, "purpose"),
        quantity_cap=granted.quantity_cap,
        vintage_first=granted.vintage_first,
        vintage_last=granted.vintage_last,
        first_transfer_definition=enum_value(
            FirstTransferTrigger, granted.first_transfer_definition,
            Code.FIRST_TRANSFER_TRIGGER_INVALID, "first-transfer definition",
        ),
        version=granted.version or 1,
        use_year_first=granted.use_year_first,
        use_year_last=granted.use_year_last,
        revoked=granted.revoked,
        authorized_entities=tuple(
            AuthorizedEntity(e.name, e.country, e.identification_number)
            for e in granted.authorized_entities
        ),
        authorized_parties=tuple(granted.authorized_parties),
    )  # fmt: skip


def stored_spec(body: bytes) -> TransactionSpec:
    """A recorded transaction's spec, from the bytes of it that its books keep."""
    return transaction_spec(transaction_pb2.Transaction.FromString(body))


def transaction_spec(message: transaction_pb2.Transaction) -> TransactionSpec:
    use = None
    if message.HasField("use"):
        use = UseDetails(
            message.use.using_party,
            message.use.year_of_use,
            enum_value(Purpose, message.use.purpose, Code.USE_DETAILS_INVALID, "purpose of use"),
            message.use.entity,
        )
    authorization = None
    if message.HasField("authorization"):
        authorization = authorization_spec(message.authorization)
    first_transfer = None
    if message.HasField("first_transfer"):
        first_transfer = FirstTransferSpec(
            message.first_transfer.first_transferring_party,
            enum_value(
                FirstTransferTrigger, message.first_transfer.trigger,
                Code.FIRST_TRANSFER_TRIGGER_INVALID, "first-transfer trigger",
            ),
        )  # fmt: skip
    return TransactionSpec(
        transaction_id=message.transaction_id,
        type=enum_value(
            TransactionType, message.type, Code.TRANSACTION_TYPE_UNSUPPORTED, "transaction type"
        ),
        transferring_registry=message.transferring_registry,
        transferring_account=message.transferring_account,
        acquiring_registry=message.acquiring_registry,
        acquiring_account=message.acquiring_account,
        blocks=tuple(unit_block(block) for block in message.blocks),
        quantity=message.quantity,
        use=use,
        subtype=message.subtype,
        authorization=authorization,
        first_transfer=first_transfer,
    )


def node_message(node: Node) -> reconciliation_pb2.HashTreeNode:
    return reconciliation_pb2.HashTreeNode(
        depth=node.depth, index=node.index, digest=node.digest, block_count=node.block_count
    )


def node(message: reconciliation_pb2.HashTreeNode) -> Node:
    return Node(message.depth, message.index, message.digest, message.block_count)


def run_status_words(status: int) -> str:
    """A reconciliation run's status as logs and command lines say it ("blocks inconsistent")."""
    if status not in reconciliation_pb2.ReconciliationStatus.values():
        return f"status {status}"
    name = reconciliation_pb2.ReconciliationStatus.Name(status)  # type: ignore[arg-type]
    return name.removeprefix("RECONCILIATION_STATUS_").lower().replace("_", " ")
