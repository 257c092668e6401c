"""Every limit of the hub and the registries, in one place, each named with its unit.

Limits the protocol fixes (what a peer may send) are marked "spec": changing one changes what
docs/PROTOCOL.md promises, and every implementation must agree. The others are this
implementation's choices, bounding memory, work and waiting; operators' settings with their
defaults live in the configs (docs/RUNNING.md). Every queue a process keeps is bounded here.
"""

from __future__ import annotations

# --- what a peer may send (spec) -----------------------------------------------------------

MAX_ENVELOPE_BYTES = 4 * 1024 * 1024  # spec: one envelope, and one EnvelopeBatch, at most
MAX_SIGNATURES = 4  # spec: signatures on one envelope
# spec: envelopes in one EnvelopeBatch: enough for one group commit's worth, few enough that a
# batch's answer is not held back long by its slowest envelope.
MAX_BATCH_ENVELOPES = 256
MAX_BLOCKS_PER_TRANSACTION = 10_000  # spec (2015): blocks in one transaction
MAX_CONFIRMED_BLOCKS = 100_000  # blocks in one leg confirmation
MAX_BLOCKS_READ_AHEAD = 16  # blocks of one message whose ledger a hub batch reads ahead
MAX_SPACES_READ_AHEAD = 32  # serial spaces a hub batch reads ahead (more: each message alone)
MAX_PARENTS_PER_QUERY = 1_024  # spec: parents in one HashTreeRequest a registry answers
MAX_LEAVES_PER_QUERY = 4_096  # spec: leaves in one BlockListRequest a registry answers
# Operators send and fetch whole AEF workbooks (a Party's year, ~60 bytes a row): the admin
# port carries messages up to this size each way, the registries' port its envelopes only.
ADMIN_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# --- connections -----------------------------------------------------------------------------

GRPC_LIMIT_MARGIN_BYTES = 64 * 1024  # gRPC sends an envelope's bytes plus its framing
HANDSHAKE_TIMEOUT_SECONDS = 5.0  # a connection that has not finished TLS by then is closed
IDLE_CONNECTION_SECONDS = 600.0  # a connection with no call for this long is closed (GOAWAY)
MAX_CONNECTIONS = 4096  # connections at once, counted from accept (before TLS)
MAX_OPEN_FILES = 1 << 20  # a hard limit of "unlimited" is raised to this much, no further
DEFAULT_RATE_LIMIT_PER_SECOND = 1000.0  # per registry: well above any registry's real load

# --- sending in batches ----------------------------------------------------------------------

MAX_BATCH_BYTES = MAX_ENVELOPE_BYTES // 2  # what a sender puts in one batch
ALONE_ENVELOPE_BYTES = MAX_BATCH_BYTES // 4  # an envelope over this goes by its unary RPC
RETRY_BATCH_AFTER_SECONDS = 300.0  # a peer without the batch RPC is asked again after this

# --- the database writer ---------------------------------------------------------------------

MAX_CHANGES_PER_COMMIT = 128  # bounds the work a failed group commit redoes
MAX_WAITING_CHANGES = 4 * MAX_CHANGES_PER_COMMIT  # queued for the writer; callers wait beyond
WRITE_CONFLICT_ATTEMPTS = 3  # a change that lost a race to another hub is run again this often

# --- the hub's delivery ----------------------------------------------------------------------

# A claim outlives its delivery attempt (at most one RPC time-out, all in a batch run at once)
# by this margin; a crashed process's claims lapse after the same short while.
LEASE_MARGIN_SECONDS = 2.0
LOOP_PAUSE_SECONDS = 1.0  # after a failed claim (a database outage), before the next
IDLE_CLAIM_SECONDS = 1.0  # claims when nothing was due back off to this interval
QUEUED_BATCHES_PER_LANE = 8  # a lane holds at most this many batches' worth of messages
STILL_FAILING_LOG_SECONDS = 600.0  # a warning per failing peer at most this often
SHUTDOWN_GRACE_SECONDS = 5.0  # calls in flight may finish for this long at a stop

# --- reconciliation --------------------------------------------------------------------------

RECONCILIATION_FANOUT = 16  # children per node of the hub's hash trees
PARENTS_PER_REQUEST = 256  # the hub asks for this many parents' children at once (~200 kB)
LEAVES_PER_REQUEST = 1_024  # ... and for the blocks under this many leaves at once
RECONCILIATION_RPC_TIMEOUT_SECONDS = 300.0  # a query waits while the registry builds its tree
RUN_MAX_SECONDS = 600.0  # a run open longer was left by a hub process that stopped
KEPT_SNAPSHOTS = 2  # a registry keeps the snapshots (and trees) of this many runs
# A leg confirmation is compared only while fewer than this many transactions of its registry
# have completed since its own: beyond, the books have moved on (the next run compares them).
LEG_LATER_TRANSACTIONS = 1_000

# --- logs ------------------------------------------------------------------------------------

REFUSAL_LOG_SECONDS = 60.0  # at most one line per peer and code this often
REFUSAL_LOG_PAIRS = 1024  # (peer, code) pairs remembered; beyond it the oldest is forgotten
REFUSAL_DETAIL_CHARS = 200  # a peer's detail is quoted up to this many characters

# --- the mechanism adapter -------------------------------------------------------------------

MAX_BLOCKS_PER_INSTRUCTION = 1_000  # serial blocks in one mechanism registry instruction
