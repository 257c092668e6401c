"""The response-code catalogue: every numbered outcome of every check, defined once.

Codes are grouped in families after the Kyoto DES (1xxx version, authentication and message
validity; 2xxx data integrity; 3xxx sequence and idempotency; 4xxx general transaction;
then Article 6, mechanism and reconciliation families). `docs/PROTOCOL.md` renders this table
(`make docs`), and a test keeps the two equal.

Each code also says how it reaches the caller:
- a gRPC status (``grpc_status`` set): the message was not taken at all (it failed
  authentication or could not be read), so nothing was recorded and the sender may correct it
  and send again under the same ``message_id``;
- otherwise it is a business outcome, carried in a signed receipt or status notice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Family(enum.Enum):
    """A family of checks; the thousands digit of its codes."""

    MESSAGE = (1, "Version, authentication and message validity")
    DATA = (2, "Data integrity")
    SEQUENCE = (3, "Message sequence and idempotency")
    GENERAL = (4, "General transaction")
    ARTICLE6 = (5, "Article 6 specific")
    MECHANISM = (6, "Article 6.4 mechanism specific")
    RECONCILIATION = (7, "Reconciliation")

    @property
    def thousands(self) -> int:
        return self.value[0]

    @property
    def title(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class CodeInfo:
    """What a code means and how it travels."""

    meaning: str
    retryable: bool
    grpc_status: str | None


def _info(meaning: str, retryable: bool = False, grpc_status: str | None = None) -> CodeInfo:
    return CodeInfo(meaning, retryable, grpc_status)


class Code(enum.IntEnum):
    """Numbered response codes. The member's value is the code on the wire."""

    # 1xxx: version, authentication and message validity. Refused before anything is recorded.
    PROTOCOL_MAJOR_UNSUPPORTED = 1001
    PROTOCOL_MINOR_UNSUPPORTED = 1002
    ENVELOPE_MALFORMED = 1010
    MESSAGE_TOO_LARGE = 1011
    PAYLOAD_TYPE_UNEXPECTED = 1012
    BATCH_TOO_LARGE = 1013
    SIGNATURE_MISSING = 1020
    SIGNATURES_TOO_MANY = 1021
    SIGNATURE_MALFORMED = 1022
    SIGNATURE_INVALID = 1023
    KEY_UNKNOWN = 1024
    KEY_NOT_VALID_NOW = 1025
    KEY_REGISTRY_MISMATCH = 1026
    CERTIFICATE_IDENTITY_MISMATCH = 1027
    PAYLOAD_MALFORMED = 1030
    HEADER_MISSING = 1031
    MESSAGE_ID_INVALID = 1032
    SENDER_UNKNOWN = 1033
    RECIPIENT_WRONG = 1034
    SENT_AT_MISSING = 1035
    CLOCK_SKEW = 1036
    PROTOCOL_VERSION_MISSING = 1037
    REGISTRY_SUSPENDED = 1040
    RATE_LIMITED = 1041

    # 2xxx: data integrity.
    REQUIRED_FIELD_MISSING = 2001
    SERIAL_RANGE_INVALID = 2002
    QUANTITY_NOT_POSITIVE = 2003
    QUANTITY_MISMATCH = 2004
    BLOCKS_OVERLAP = 2005
    REGISTRY_ID_INVALID = 2006
    PARTY_CODE_INVALID = 2007
    COOPERATIVE_APPROACH_ID_INVALID = 2008
    VINTAGE_INVALID = 2009
    ACCOUNT_ID_INVALID = 2010
    TRANSACTION_ID_INVALID = 2011
    UNIT_KIND_INVALID = 2012
    UNIT_STATE_INVALID = 2013
    ITMO_ID_INVALID = 2014
    TOO_MANY_BLOCKS = 2015

    # 3xxx: message sequence and idempotency.
    MESSAGE_ID_REUSED = 3001
    MESSAGE_IN_PROGRESS = 3002
    TRANSACTION_UNKNOWN = 3003
    TRANSACTION_ALREADY_FINAL = 3004
    TRANSACTION_ID_REUSED = 3005
    STATUS_TRANSITION_INVALID = 3006

    # 4xxx: general transaction.
    TRANSACTION_TYPE_UNSUPPORTED = 4001
    TRANSFERRING_ACCOUNT_NOT_FOUND = 4002
    ACQUIRING_ACCOUNT_NOT_FOUND = 4003
    ACCOUNT_CLOSED = 4004
    UNITS_NOT_HELD = 4005
    UNITS_LOCKED = 4006
    UNITS_NOT_HELD_STATE = 4007
    REGISTRY_NOT_PARTY_TO_UNITS = 4008
    ACQUIRING_REGISTRY_UNKNOWN = 4009
    ACQUIRING_REGISTRY_SAME = 4010
    ACQUIRING_REGISTRY_REFUSED = 4011
    TRANSACTION_TIMED_OUT = 4012
    SERIALS_ALREADY_ISSUED = 4013
    ACCOUNT_TYPE_NOT_ALLOWED = 4014
    ACQUIRING_REGISTRY_SUSPENDED = 4015
    ACQUIRING_REGISTRY_MISMATCH = 4016

    # 5xxx: Article 6 specific.
    COOPERATIVE_APPROACH_NOT_AUTHORIZED = 5001
    UNITS_NOT_AUTHORIZED = 5002
    AUTHORIZATION_CAP_EXCEEDED = 5003
    VINTAGE_OUTSIDE_AUTHORIZATION = 5004
    ALREADY_FIRST_TRANSFERRED = 5005
    COOPERATIVE_APPROACH_MISMATCH = 5006
    PURPOSE_NOT_AUTHORIZED = 5007
    USE_DETAILS_INVALID = 5008
    SECTION_PROVISIONAL = 5009
    UNIT_KIND_NOT_ALLOWED = 5010
    AUTHORIZATION_UNKNOWN = 5011
    AUTHORIZATION_ID_REUSED = 5012
    UNITS_ALREADY_AUTHORIZED = 5013
    FIRST_TRANSFERRING_PARTY_MISMATCH = 5014
    FIRST_TRANSFER_TRIGGER_INVALID = 5015
    AUTHORIZATION_VERSION_INVALID = 5016
    AUTHORIZATION_TERMS_FIXED = 5017
    AUTHORIZATION_BELOW_FIRST_TRANSFERRED = 5018
    AUTHORIZATION_REVOKED = 5019
    VINTAGE_BEFORE_ARTICLE6 = 5020
    USE_OUTSIDE_AUTHORIZATION = 5021
    ITMO_ISSUANCE_NOT_FIRST_TRANSFER = 5022
    NOT_YET_FIRST_TRANSFERRED = 5023
    PARTY_NOT_OF_REGISTRY = 5024
    AUTHORIZED_ENTITY_INVALID = 5025

    # 6xxx: Article 6.4 mechanism specific.
    A64ER_NOT_AUTHORIZED = 6001
    SHARE_OF_PROCEEDS_NOT_APPLIED = 6002
    OMGE_NOT_APPLIED = 6003
    SERIALS_ALREADY_FORWARDED = 6004
    VINTAGE_IMPLAUSIBLE = 6005
    INSTRUCTION_ID_REUSED = 6006
    ISSUANCE_RECORD_CONFLICT = 6007

    # 7xxx: reconciliation.
    UNITS_FROZEN = 7001
    SNAPSHOT_IN_PROGRESS = 7002
    RECONCILIATION_RUN_UNKNOWN = 7003
    RECONCILIATION_START_DENIED = 7004
    HASH_TREE_NODE_INVALID = 7005
    LEG_CONFIRMATION_MISMATCH = 7006
    LEG_CONFIRMATION_NOT_OWN = 7007

    @property
    def family(self) -> Family:
        return _FAMILY_BY_THOUSANDS[self.value // 1000]

    @property
    def info(self) -> CodeInfo:
        return CATALOGUE[self]


_FAMILY_BY_THOUSANDS = {family.thousands: family for family in Family}

_M = "INVALID_ARGUMENT"
_AUTH = "UNAUTHENTICATED"
_DENIED = "PERMISSION_DENIED"

CATALOGUE: dict[Code, CodeInfo] = {
    Code.PROTOCOL_MAJOR_UNSUPPORTED: _info(
        "The header's major protocol version is not the receiver's.",
        grpc_status="FAILED_PRECONDITION",
    ),
    Code.PROTOCOL_MINOR_UNSUPPORTED: _info(
        "The header's minor protocol version is newer than the receiver's.",
        grpc_status="FAILED_PRECONDITION",
    ),
    Code.ENVELOPE_MALFORMED: _info("The request bytes are not an Envelope.", grpc_status=_M),
    Code.MESSAGE_TOO_LARGE: _info(
        "The envelope exceeds the receiver's size limit.", grpc_status="RESOURCE_EXHAUSTED"
    ),
    Code.PAYLOAD_TYPE_UNEXPECTED: _info(
        "The payload_type is not one this RPC accepts.", grpc_status=_M
    ),
    Code.BATCH_TOO_LARGE: _info(
        "The batch carries more envelopes than the receiver accepts; split it.", grpc_status=_M
    ),
    Code.SIGNATURE_MISSING: _info("The envelope carries no signature.", grpc_status=_AUTH),
    Code.SIGNATURES_TOO_MANY: _info(
        "The envelope carries more signatures than the receiver checks (4).", grpc_status=_AUTH
    ),
    Code.SIGNATURE_MALFORMED: _info(
        "A signature is not 64 bytes, or its key_id is not 64 lowercase hex digits.",
        grpc_status=_AUTH,
    ),
    Code.SIGNATURE_INVALID: _info(
        "A signature does not verify over the payload type and payload bytes.", grpc_status=_AUTH
    ),
    Code.KEY_UNKNOWN: _info("No registry in the directory has this key_id.", grpc_status=_AUTH),
    Code.KEY_NOT_VALID_NOW: _info(
        "The signing key is outside its validity window (not yet valid, or expired).",
        grpc_status=_AUTH,
    ),
    Code.KEY_REGISTRY_MISMATCH: _info(
        "The signing key belongs to a registry other than the header's sender.",
        grpc_status=_DENIED,
    ),
    Code.CERTIFICATE_IDENTITY_MISMATCH: _info(
        "The TLS client certificate's identity is not the signing key's registry.",
        grpc_status=_DENIED,
    ),
    Code.PAYLOAD_MALFORMED: _info(
        "The payload bytes do not parse as the declared payload_type.", grpc_status=_M
    ),
    Code.HEADER_MISSING: _info("The payload has no header.", grpc_status=_M),
    Code.MESSAGE_ID_INVALID: _info(
        "The message_id is not a UUID in canonical lowercase form.", grpc_status=_M
    ),
    Code.SENDER_UNKNOWN: _info("The header's sender is not in the directory.", grpc_status=_DENIED),
    Code.RECIPIENT_WRONG: _info("The header's recipient is not this receiver.", grpc_status=_M),
    Code.SENT_AT_MISSING: _info("The header has no sent_at.", grpc_status=_M),
    Code.CLOCK_SKEW: _info(
        "The header's sent_at is more than 300 s from the receiver's clock (a new message; "
        "a replay of a recorded message is answered from the record instead).",
        retryable=True,
        grpc_status=_M,
    ),
    Code.PROTOCOL_VERSION_MISSING: _info("The header has no protocol_version.", grpc_status=_M),
    Code.REGISTRY_SUSPENDED: _info(
        "The sending registry is suspended by the hub's operators.", grpc_status=_DENIED
    ),
    Code.RATE_LIMITED: _info(
        "The sending registry exceeded its request rate.",
        retryable=True,
        grpc_status="RESOURCE_EXHAUSTED",
    ),
    Code.REQUIRED_FIELD_MISSING: _info("A field the transaction type requires is empty."),
    Code.SERIAL_RANGE_INVALID: _info("A block's serial_last is less than its serial_first."),
    Code.QUANTITY_NOT_POSITIVE: _info("The quantity is zero or negative."),
    Code.QUANTITY_MISMATCH: _info("The quantity is not the sum of the blocks' unit counts."),
    Code.BLOCKS_OVERLAP: _info("Two blocks of the message share serial numbers."),
    Code.REGISTRY_ID_INVALID: _info("A registry id is not 2-16 uppercase letters and digits."),
    Code.PARTY_CODE_INVALID: _info("A Party code is not three uppercase letters (ISO 3166-1)."),
    Code.COOPERATIVE_APPROACH_ID_INVALID: _info(
        "A cooperative approach id is not 'CA' followed by 4 digits (the AEF's pattern)."
    ),
    Code.VINTAGE_INVALID: _info("A vintage or year is not a four-digit calendar year."),
    Code.ACCOUNT_ID_INVALID: _info(
        "An account id is malformed or its ISO 7064 MOD 97-10 check digits are wrong."
    ),
    Code.TRANSACTION_ID_INVALID: _info(
        "The transaction id is not the sender's registry id, '-', and a sequence number."
    ),
    Code.UNIT_KIND_INVALID: _info("A block's unit kind is unset or not allowed here."),
    Code.UNIT_STATE_INVALID: _info("A block's state is unset or not allowed here."),
    Code.ITMO_ID_INVALID: _info("An ITMO unique identifier is malformed."),
    Code.TOO_MANY_BLOCKS: _info("The message carries more blocks than the receiver accepts."),
    Code.MESSAGE_ID_REUSED: _info(
        "This sender already sent different bytes under this message_id.",
        grpc_status="ALREADY_EXISTS",
    ),
    Code.MESSAGE_IN_PROGRESS: _info(
        "A message with this message_id is still being processed; retry the same bytes.",
        retryable=True,
        grpc_status="UNAVAILABLE",
    ),
    Code.TRANSACTION_UNKNOWN: _info("No transaction with this id involves the sender."),
    Code.TRANSACTION_ALREADY_FINAL: _info(
        "The transaction is already final; the notice was logged, not applied. "
        "The receipt carries the stored status."
    ),
    Code.TRANSACTION_ID_REUSED: _info("The sender already proposed a transaction with this id."),
    Code.STATUS_TRANSITION_INVALID: _info(
        "The status notice asks for a transition the state machine does not allow."
    ),
    Code.TRANSACTION_TYPE_UNSUPPORTED: _info(
        "The transaction type is unset, or not allowed for this sender or route."
    ),
    Code.TRANSFERRING_ACCOUNT_NOT_FOUND: _info(
        "The transferring account does not exist in the transferring registry."
    ),
    Code.ACQUIRING_ACCOUNT_NOT_FOUND: _info(
        "The acquiring account does not exist in the acquiring registry."
    ),
    Code.ACCOUNT_CLOSED: _info("An account of the transaction is closed or blocked."),
    Code.UNITS_NOT_HELD: _info(
        "Some units are not held by the transferring registry and account, "
        "or their attributes differ from the hub's ledger."
    ),
    Code.UNITS_LOCKED: _info(
        "Some units are locked by another pending transaction.", retryable=True
    ),
    Code.UNITS_NOT_HELD_STATE: _info("Some units are already used or cancelled."),
    Code.REGISTRY_NOT_PARTY_TO_UNITS: _info(
        "The sender may not act on these units or this transaction."
    ),
    Code.ACQUIRING_REGISTRY_UNKNOWN: _info("The acquiring registry is not in the directory."),
    Code.ACQUIRING_REGISTRY_SAME: _info(
        "An external transfer names the transferring registry as the acquiring registry."
    ),
    Code.ACQUIRING_REGISTRY_REFUSED: _info(
        "The acquiring registry refused the units (the transaction is rejected, 6)."
    ),
    Code.TRANSACTION_TIMED_OUT: _info(
        "The acquiring registry did not answer in time (the transaction is cancelled)."
    ),
    Code.SERIALS_ALREADY_ISSUED: _info(
        "An issuance names serials that the originating registry already issued."
    ),
    Code.ACCOUNT_TYPE_NOT_ALLOWED: _info("The account's type does not allow this transaction."),
    Code.ACQUIRING_REGISTRY_SUSPENDED: _info(
        "The acquiring registry is suspended by the hub's operators.", retryable=True
    ),
    Code.ACQUIRING_REGISTRY_MISMATCH: _info(
        "A transaction of this type must name the transferring registry as acquiring registry."
    ),
    Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED: _info(
        "The registry has no authority to issue or act under this cooperative approach."
    ),
    Code.UNITS_NOT_AUTHORIZED: _info("First transfer of mitigation outcomes not authorized."),
    Code.AUTHORIZATION_CAP_EXCEEDED: _info(
        "The quantity would exceed the authorization's quantity cap."
    ),
    Code.VINTAGE_OUTSIDE_AUTHORIZATION: _info(
        "A vintage is outside the authorization's vintage window."
    ),
    Code.ALREADY_FIRST_TRANSFERRED: _info("Some units were already first transferred."),
    Code.COOPERATIVE_APPROACH_MISMATCH: _info(
        "An account is not linked to the units' cooperative approach."
    ),
    Code.PURPOSE_NOT_AUTHORIZED: _info(
        "The use's purpose is not one the units are authorized for."
    ),
    Code.USE_DETAILS_INVALID: _info(
        "A use (or a cancellation that needs them) lacks the using or cancelling Party or a "
        "purpose of use (NDC, OIMP, IMP or OP), or an NDC use lacks its year of use."
    ),
    Code.SECTION_PROVISIONAL: _info(
        "A provisional Party section or account may not do this until identity is verified."
    ),
    Code.UNIT_KIND_NOT_ALLOWED: _info("The unit kind is not allowed for this transaction type."),
    Code.AUTHORIZATION_UNKNOWN: _info("The authorization id is unknown."),
    Code.AUTHORIZATION_ID_REUSED: _info("An authorization with this id was already granted."),
    Code.UNITS_ALREADY_AUTHORIZED: _info(
        "Some mitigation outcomes are already authorized (bound to a cooperative approach)."
    ),
    Code.FIRST_TRANSFERRING_PARTY_MISMATCH: _info(
        "The first-transferring Party is not the Party that authorized the units."
    ),
    Code.FIRST_TRANSFER_TRIGGER_INVALID: _info(
        "The first-transfer trigger is unset or is not an event the authorization defines as "
        "first transfer (use towards an NDC: the first international transfer; OIMP: the "
        "Party's recorded definition), or an authorization's definition does not suit its "
        "purpose."
    ),
    Code.AUTHORIZATION_VERSION_INVALID: _info(
        "A new version of an authorization is not the recorded version plus one, or does not "
        "come from the registry that recorded the authorization."
    ),
    Code.AUTHORIZATION_TERMS_FIXED: _info(
        "A new version changes the authorizing Party, cooperative approach, purpose or "
        "first-transfer definition, which the bound units carry: grant a new authorization."
    ),
    Code.AUTHORIZATION_BELOW_FIRST_TRANSFERRED: _info(
        "A new version authorizes fewer units than are already first transferred under it."
    ),
    Code.AUTHORIZATION_REVOKED: _info(
        "The authorization is revoked: nothing more is bound or first transferred under it."
    ),
    Code.VINTAGE_BEFORE_ARTICLE6: _info(
        "The vintage is before the first Article 6.2 vintage the hub accepts (2021 unless "
        "configured otherwise)."
    ),
    Code.USE_OUTSIDE_AUTHORIZATION: _info(
        "The year of use is outside the authorization's timeframe of use, or the using Party "
        "is not among its authorized Parties."
    ),
    Code.ITMO_ISSUANCE_NOT_FIRST_TRANSFER: _info(
        "ITMOs come into being only by first transfer: an issuance of ITMOs must be the first "
        "transfer of a recorded authorization whose first-transfer definition is issuance."
    ),
    Code.NOT_YET_FIRST_TRANSFERRED: _info(
        "Authorized outcomes not yet first transferred may move, be used or be cancelled only "
        "by the first transfer their authorization defines."
    ),
    Code.PARTY_NOT_OF_REGISTRY: _info(
        "The authorizing, first-transferring, using or cancelling Party is not the Party the "
        "registry acts for."
    ),
    Code.AUTHORIZED_ENTITY_INVALID: _info(
        "An authorized entity lacks its name, identification number or ISO 3166-1 alpha-3 "
        "country of incorporation."
    ),
    Code.A64ER_NOT_AUTHORIZED: _info(
        "The A6.4ERs are not authorized by the host Party (mitigation contribution A6.4ERs)."
    ),
    Code.SHARE_OF_PROCEEDS_NOT_APPLIED: _info(
        "The issuance record does not set aside the 5% share of proceeds for the Adaptation "
        "Fund (rounded up), or the serials forwarded include it."
    ),
    Code.OMGE_NOT_APPLIED: _info(
        "The issuance record does not cancel 2% for OMGE (rounded up), or the serials "
        "forwarded include it."
    ),
    Code.SERIALS_ALREADY_FORWARDED: _info(
        "Some serials were already forwarded to the hub (or are being forwarded)."
    ),
    Code.VINTAGE_IMPLAUSIBLE: _info("The vintage is before 2021 or after the current year."),
    Code.INSTRUCTION_ID_REUSED: _info(
        "An instruction with this id was received before with other content."
    ),
    Code.ISSUANCE_RECORD_CONFLICT: _info(
        "The issuance record differs from the one received before under the same issuance id, "
        "or the serials lie outside the issuance."
    ),
    Code.UNITS_FROZEN: _info(
        "Some units are frozen by an unresolved reconciliation discrepancy.", retryable=True
    ),
    Code.SNAPSHOT_IN_PROGRESS: _info(
        "A reconciliation run with a registry involved is open: send the message again later "
        "(nothing was recorded).",
        retryable=True,
        grpc_status="UNAVAILABLE",
    ),
    Code.RECONCILIATION_RUN_UNKNOWN: _info("No reconciliation run with this id."),
    Code.RECONCILIATION_START_DENIED: _info(
        "The registry cannot start the run now.", retryable=True
    ),
    Code.HASH_TREE_NODE_INVALID: _info("A requested hash-tree node is outside the run's tree."),
    Code.LEG_CONFIRMATION_MISMATCH: _info(
        "The blocks a registry confirmed after a transaction differ from the hub's ledger; "
        "they are recorded as discrepancies and their serials frozen until resolved."
    ),
    Code.LEG_CONFIRMATION_NOT_OWN: _info(
        "A leg confirmation reports blocks that the hub's ledger holds in another registry: "
        "a registry confirms only its own side. Nothing is recorded or frozen."
    ),
}


class Refusal(Exception):
    """A check failed: the message or transaction is refused with ``code``.

    Raised by checks anywhere; turned into a gRPC status or a receipt in exactly one place
    per process edge. ``detail`` is shown to the peer: never put key material in it.
    """

    def __init__(self, code: Code, detail: str = "") -> None:
        super().__init__(
            f"{code.value} {code.name}: {detail}" if detail else f"{code.value} {code.name}"
        )
        self.code = code
        self.detail = detail


def check_catalogue() -> None:
    """Assert the catalogue's invariants: every code described, in its family's range."""
    assert set(CATALOGUE) == set(Code), "every code needs exactly one catalogue entry"
    for code, info in CATALOGUE.items():
        assert 1000 <= code.value < 8000, code
        assert info.meaning.endswith("."), code
        assert info.meaning[0].isupper(), code
        assert code.family.thousands == code.value // 1000
