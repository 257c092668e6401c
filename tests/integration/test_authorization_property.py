"""Whatever registries propose, in any order, the hub's ledger never holds an ITMO without a
recorded authorization and first transfer by its authorizing Party, and never more ITMOs
under an authorization than its authorized quantity, whichever version set it.

A seeded property test (hypothesis) over sequences of issuances, authorizations (new,
revised, revoked, binding outcomes or not), first transfers, uses and ITMO issuances, many
of them refused, on a real SQLite database.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from article6.model import Status, UnitKind
from article6.v1 import transaction_pb2, units_pb2
from gateway.storage import ledger
from gateway.storage.records import authorization_versions, list_authorizations
from tests.builders import CHE_ACCOUNT, GHA_ACCOUNT, HubHarness, block, transaction

T = transaction_pb2
AUTHORIZATIONS = ("GHA-P0", "GHA-P1", "GHA-P2")
PURPOSES = (
    (units_pb2.PURPOSE_NDC, T.FIRST_TRANSFER_TRIGGER_UNSPECIFIED),
    (units_pb2.PURPOSE_OIMP, T.FIRST_TRANSFER_TRIGGER_AUTHORIZATION),
    (units_pb2.PURPOSE_OIMP, T.FIRST_TRANSFER_TRIGGER_ISSUANCE),
    (units_pb2.PURPOSE_NDC_AND_OIMP, T.FIRST_TRANSFER_TRIGGER_USE_OR_CANCELLATION),
    (units_pb2.PURPOSE_OIMP, T.FIRST_TRANSFER_TRIGGER_UNSPECIFIED),  # refused: no definition
)
# Serials relative to an authorization's outcomes (it binds 200 at 1, 201 or 401).
serials = st.tuples(st.integers(1, 170), st.integers(0, 25)).map(
    lambda pair: (pair[0], pair[0] + pair[1])
)
operations = st.one_of(
    st.tuples(st.just("outcomes"), serials),
    st.tuples(
        st.just("authorize"),
        st.integers(0, 2),
        st.integers(0, 4),
        st.integers(0, 300),
        st.booleans(),
        st.one_of(st.none(), serials),
    ),
    st.tuples(st.just("itmos"), st.integers(0, 2), serials),
    st.tuples(st.just("first"), st.integers(0, 2), serials, st.booleans()),
    st.tuples(st.just("use"), st.integers(0, 2), serials, st.booleans()),
)


class Proposer:
    """GHA01's side: turns operations into proposals, remembering only what it sent."""

    def __init__(self, hub: HubHarness) -> None:
        self.hub = hub
        self.number = 100
        self.purposes: dict[str, tuple[Any, Any]] = {}
        self.current: dict[str, T.Authorization] = {}  # each one's version as recorded

    def _id(self) -> str:
        self.number += 1
        return f"GHA01-{self.number}"

    def _bound(self, index: int, first: int, last: int) -> units_pb2.UnitBlock:
        name = AUTHORIZATIONS[index]
        first, last = first + 200 * index, last + 200 * index
        purpose, _ = self.purposes.get(name, PURPOSES[0])
        return block(
            first,
            last,
            unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME,
            first_transferring_party="",
            authorization_id=name,
            purpose=purpose,
        )

    def apply(self, operation: tuple[Any, ...]) -> None:
        getattr(self, operation[0])(*operation[1:])

    def outcomes(self, span: tuple[int, int]) -> None:
        unit = block(
            *span,
            unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME,
            cooperative_approach="",
            first_transferring_party="",
            authorization_id="",
            purpose=units_pb2.PURPOSE_UNSPECIFIED,
        )
        self.hub.propose(
            transaction(
                self._id(), T.TRANSACTION_TYPE_ISSUANCE, [unit], source="", target=GHA_ACCOUNT
            )
        )

    def authorize(
        self, index: int, kind: int, cap: int, revoke: bool, span: tuple[int, int] | None
    ) -> None:
        """Outcomes bound under the current version (restated), or a new version."""
        name = AUTHORIZATIONS[index]
        purpose, definition = self.purposes.setdefault(name, PURPOSES[kind])
        granted = T.Authorization(
            authorization_id=name, authorizing_party="GHA", cooperative_approach="CA0001",
            purpose=purpose, quantity_cap=cap, vintage_first=2021, vintage_last=2030,
            first_transfer_definition=definition, version=1, revoked=revoke,
        )  # fmt: skip
        if name in self.current:
            granted = T.Authorization()
            granted.CopyFrom(self.current[name])
            if span is None:  # a new version: the quantity changed, or revoked
                granted.version += 1
                granted.quantity_cap, granted.revoked = cap, revoke
        blocks = []
        if span is not None:
            blocks = [
                block(*span, unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME,
                      cooperative_approach="", first_transferring_party="", authorization_id="",
                      purpose=units_pb2.PURPOSE_UNSPECIFIED)
            ]  # fmt: skip
        outcome = self.hub.propose(transaction(
            self._id(), T.TRANSACTION_TYPE_AUTHORIZATION, blocks,
            source=GHA_ACCOUNT if blocks else "", authorization=granted,
        ))  # fmt: skip
        if outcome.status is Status.COMPLETED:
            self.current[name] = granted
        elif name not in self.current:
            self.purposes.pop(name)

    def itmos(self, index: int, span: tuple[int, int]) -> None:
        """ITMOs issued (serials above 1000, apart from the outcomes')."""
        name = AUTHORIZATIONS[index]
        purpose, _ = self.purposes.get(name, PURPOSES[0])
        unit = block(span[0] + 1000, span[1] + 1000, authorization_id=name, purpose=purpose)
        first = T.FirstTransfer(
            first_transferring_party="GHA", trigger=T.FIRST_TRANSFER_TRIGGER_ISSUANCE
        )
        self.hub.propose(
            transaction(
                self._id(),
                T.TRANSACTION_TYPE_ISSUANCE,
                [unit],
                source="",
                target=GHA_ACCOUNT,
                first_transfer=first,
            )
        )

    def first(self, index: int, span: tuple[int, int], accept: bool) -> None:
        transaction_id = self._id()
        first = T.FirstTransfer(
            first_transferring_party="GHA", trigger=T.FIRST_TRANSFER_TRIGGER_INTERNATIONAL_TRANSFER
        )
        outcome = self.hub.propose(
            transaction(
                transaction_id,
                T.TRANSACTION_TYPE_FIRST_TRANSFER,
                [self._bound(index, *span)],
                acquirer="CHE01",
                target=CHE_ACCOUNT,
                first_transfer=first,
            )
        )
        if outcome.status is Status.CHECKED:
            self.hub.decide(transaction_id, Status.ACCEPTED if accept else Status.REJECTED)

    def use(self, index: int, span: tuple[int, int], as_first_transfer: bool) -> None:
        details = T.UseDetails(using_party="GHA", purpose=units_pb2.PURPOSE_OIMP)
        extra: dict[str, Any] = {"use": details}
        if as_first_transfer:
            extra["first_transfer"] = T.FirstTransfer(
                first_transferring_party="GHA",
                trigger=T.FIRST_TRANSFER_TRIGGER_USE_OR_CANCELLATION,
            )
        self.hub.propose(
            transaction(
                self._id(),
                T.TRANSACTION_TYPE_USE,
                [self._bound(index, *span)],
                **extra,
            )
        )


def assert_no_itmo_without_authorization(hub: HubHarness) -> int:
    """Check the invariants; return how many ITMOs the sequence made."""

    def read(connection: Any) -> tuple[list[Any], dict[str, Any], dict[str, list[int]]]:
        blocks = ledger.blocks_of_registry(connection, "GHA01") + ledger.blocks_of_registry(
            connection, "CHE01"
        )
        records = {r.grant.authorization_id: r for r, _ in list_authorizations(connection)}
        caps = {
            name: [
                T.Authorization.FromString(v.body).quantity_cap
                for v in authorization_versions(connection, name)
            ]
            for name in records
        }
        return blocks, records, caps

    blocks, records, caps = hub.database.read_now(read)
    itmos: dict[str, int] = defaultdict(int)
    for held in blocks:
        unit = held.attributes.unit
        if unit.unit_kind is not UnitKind.ITMO:
            continue
        record = records.get(unit.authorization_id)
        assert record is not None, f"an ITMO without a recorded authorization: {held}"
        assert unit.first_transferring_party == record.grant.authorizing_party, held
        itmos[unit.authorization_id] += held.unit_count
    for name, record in records.items():
        # The harness's standing authorization is not used here, so every count is ours.
        assert itmos.get(name, 0) == record.reserved, (name, itmos, record)
        if record.grant.quantity_cap:
            assert record.reserved <= record.grant.quantity_cap, record
        if any(caps[name]) and all(caps[name]):
            assert record.reserved <= max(caps[name]), (record, caps[name])
    return sum(itmos.values())


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 300)), min_size=3, max_size=3),
    st.lists(operations, min_size=1, max_size=30),
)
def test_no_sequence_of_proposals_mints_an_itmo_or_exceeds_an_authorization(
    granted: list[tuple[int, int]], steps: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        hub = HubHarness.create(f"sqlite:///{Path(folder) / 'hub.db'}")
        try:
            proposer = Proposer(hub)
            # Outcomes 1-700 to work on, and the three authorizations (some refused).
            proposer.outcomes((1, 700))
            for index, (kind, cap) in enumerate(granted):
                proposer.authorize(index, kind, cap, False, None)
                proposer.authorize(index, kind, cap, False, (index * 200 + 1, index * 200 + 200))
            for step in steps:
                proposer.apply(step)
            made = assert_no_itmo_without_authorization(hub)
            event("some ITMOs made" if made else "no ITMO made")
        finally:
            hub.close()
