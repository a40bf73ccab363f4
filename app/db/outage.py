"""Which database failures mean "unavailable, try again" (503) and which are worth one retry.

Failures are classified by their cause, not by the wrapper's type: SQLAlchemy wraps asyncpg's
errors (a `DBAPIError` whose `.orig` is an adapter error whose `__cause__` is asyncpg's), and
what matters is at the bottom of that chain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATE classes and codes that say the server cannot serve us now (not that we erred):
# 08 connection exception, 53 insufficient resources, 57P operator intervention (shutdown,
# cannot connect now), 57014 query canceled (statement_timeout), 55P03 lock not available
# (lock_timeout, e.g. while a migration holds a table), 40001/40P01 once their retry failed;
# 42P01/42703/42883 (undefined table, column, function): the schema is not the one this build
# runs on (a downgrade under the live service; at start-up `jambo serve` refuses outright).
# 25006 read-only transaction: we reached a server that is (no longer, or not yet) the
# primary, as in a failover, where a crashed primary restarts read-only before it is demoted
# or promoted.
_OUTAGE_PREFIXES = ("08", "53", "57P")
_OUTAGE_CODES = frozenset({"57014", "55P03", "40001", "40P01", "42P01", "42703", "42883", "25006"})
RETRYABLE_CODES = frozenset({"40001", "40P01"})
# Codes after which the connection itself is no use: it lost its server, or its server is
# not the primary (dropped, so the pool reconnects to whichever host is the primary now).
_DROP_PREFIXES = ("08", "57P", "25006")
# What a server that is restarting answers (an internal error, XX000, for a server that
# crashed and cannot yet write its files, e.g. on a full disk).
_RESTARTING = ("could not write init file", "the database system is starting up")

# asyncpg's client-side messages for a connection that broke under it.
_BROKEN_MESSAGES = (
    "connection was closed in the middle of operation",
    "cannot switch to state",
    "connection is closed",
    "the underlying connection is closed",
    "pool is closing",
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then every cause below it (`__cause__` and SQLAlchemy's `.orig`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def sqlstate(exc: BaseException) -> str | None:
    """The first SQLSTATE found down the cause chain."""
    for cause in causes(exc):
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _is_outage_cause(cause: BaseException) -> bool:
    if isinstance(cause, (OSError, asyncio.TimeoutError, TimeoutError, PoolTimeout)):
        return True  # refused/reset connections, connect or command timeouts, pool checkout
    if isinstance(cause, asyncpg.TargetServerAttributeNotMatched):
        return True  # no host is the primary (target_session_attrs): a failover under way
    if isinstance(cause, (asyncpg.InternalClientError, asyncpg.InterfaceError)):
        return any(m in str(cause) for m in _BROKEN_MESSAGES)
    if isinstance(cause, DBAPIError) and cause.connection_invalidated:
        return True
    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if isinstance(code, str):
        if code == "XX000":
            return any(m in str(cause) for m in _RESTARTING)
        return code in _OUTAGE_CODES or code.startswith(_OUTAGE_PREFIXES)
    text = str(cause)
    return any(m in text for m in _BROKEN_MESSAGES + _RESTARTING)


def is_outage(exc: BaseException) -> bool:
    """Whether the failure means the database cannot serve us right now (→ 503)."""
    return any(_is_outage_cause(cause) for cause in causes(exc))


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the work was rolled back and may run again."""
    return sqlstate(exc) in RETRYABLE_CODES


def connection_lost(exc: BaseException) -> bool:
    """An outage that leaves the connection unusable (not a statement the server refused):
    its server is gone, restarting, or not the primary."""
    code = sqlstate(exc)
    return is_outage(exc) and (code is None or code.startswith(_DROP_PREFIXES))
