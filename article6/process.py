"""What a serving process owns alone, taken at start: its SQLite database, its ports, and
enough file descriptors.

- **One process per SQLite file.** A server holds an exclusive ``flock`` on ``<file>.lock``
  (holding its process id) for as long as it runs; a second server on the same file stops at
  start, naming the file and the holder. The kernel drops the lock when the process dies, so
  a crash never leaves a stale lock. Command-line tools that read or write the file while
  the server runs take no lock (SQLite orders them). PostgreSQL needs none: several hubs may
  share one database.
- **Ports are not shared.** gRPC binds with ``SO_REUSEPORT`` by default, so a second server
  on a taken port would start and split the traffic; ``grpc.so_reuseport = 0`` makes the bind
  fail, and the process stops with the address.
- **File descriptors.** Every connection costs one; the soft limit is often 1,024 (systemd's
  default), far below the hard limit. A server raises its soft limit to the hard one at start
  and logs both.

A ``StartupError`` is meant to be printed as one line and to end the process (exit 1).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import resource
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any, ParamSpec

from sqlalchemy.engine import make_url

from article6.limits import MAX_OPEN_FILES

log = logging.getLogger("article6.process")
P = ParamSpec("P")


class StartupError(Exception):
    """Something this process needs is taken or missing: say what, in one line, and stop."""


class DatabaseLock:
    """The exclusive lock on a SQLite database's lock file, held until ``release``."""

    def __init__(self, handle: IO[str] | None) -> None:
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor drops the flock
            self._handle = None


def lock_database(url: str, holder: str) -> DatabaseLock:
    """Lock a SQLite database for this process (``holder`` names it in the lock file); a
    no-op for other databases. Raises StartupError if another process holds it."""
    if not url.startswith("sqlite"):
        return DatabaseLock(None)
    database = make_url(url).database
    if not database or database == ":memory:":
        return DatabaseLock(None)
    path = Path(f"{database}.lock")
    handle = path.open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise StartupError(f"database {database} is in use by {owner} (lock {path})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{holder} (pid {os.getpid()})\n")
    handle.flush()
    return DatabaseLock(handle)


def listen(server: Any, address: str, credentials: Any) -> int:
    """Bind ``server`` (grpc.aio) to ``address`` with TLS; StartupError if it is taken."""
    try:
        port: int = server.add_secure_port(address, credentials)
    except RuntimeError:
        port = 0
    if not port:
        raise StartupError(f"cannot listen on {address}: in use, or not an address of this host")
    return port


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    target = max(soft, target)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # a hard limit above the kernel's nr_open
            target = soft
    log.info("open files: soft limit %d (was %d), hard limit %d", target, soft,
             hard if hard != resource.RLIM_INFINITY else -1)  # fmt: skip
    return soft, target


def command_line(main: Callable[P, int]) -> Callable[P, int]:
    """A console script's main: what a user can get wrong ends it with one line on stderr and
    no traceback (which goes to the log, at debug level): a StartupError (status 1), a file
    it names that cannot be read or written (status 2, naming the path); Ctrl-C ends it with
    one line and status 130, and a reader that stops reading (``--json | head``) quietly."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except StartupError as error:
            log.debug("stopped", exc_info=True)
            print(f"{_prog()}: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # Python flushes stdout once more at exit: point it at /dev/null (Python docs,
            # "Note on SIGPIPE").
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except OSError as error:
            if error.filename is None:
                raise
            log.debug("stopped", exc_info=True)
            print(f"{_prog()}: {error.filename}: {error.strerror}", file=sys.stderr)
            return 2

    return run


def progress(line: str) -> None:
    """A progress line of a long command, on stderr: stdout keeps the results, for scripts."""
    print(line, file=sys.stderr, flush=True)


def _prog() -> str:
    """The command's name as its users know it: the console script (``python -m gateway`` is
    article6-hub, the script whose entry point is that package's ``__main__``)."""
    path = Path(sys.argv[0])
    if path.name != "__main__.py":
        return path.name
    module = f"{path.parent.name}.__main__"
    scripts = entry_points(group="console_scripts")
    return next((s.name for s in scripts if s.module == module), path.parent.name)
