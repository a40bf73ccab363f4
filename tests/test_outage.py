"""Failures are classified by their cause, however deeply the drivers wrap it."""

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.db.outage import is_outage, is_retryable
from app.errors import Unavailable


def _wrapped(cause: BaseException) -> DBAPIError:
    """As SQLAlchemy's asyncpg adapter raises them: a DBAPIError whose .orig was raised
    from the driver's exception."""
    adapter = Exception(f"{type(cause).__name__}: {cause}")
    adapter.__cause__ = cause
    return DBAPIError("SELECT 1", {}, adapter, connection_invalidated=False)


def _pg(cls: type[asyncpg.PostgresError], message: str) -> asyncpg.PostgresError:
    return cls(message)


@pytest.mark.parametrize(
    "cause",
    [
        _pg(asyncpg.CannotConnectNowError, "the database system is shutting down"),
        _pg(asyncpg.AdminShutdownError, "terminating connection due to administrator command"),
        _pg(asyncpg.ConnectionDoesNotExistError, "connection does not exist"),
        _pg(asyncpg.QueryCanceledError, "canceling statement due to statement timeout"),
        _pg(asyncpg.TooManyConnectionsError, "sorry, too many clients already"),
        _pg(asyncpg.DeadlockDetectedError, "deadlock detected"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InternalClientError("cannot switch to state 12; another operation"),
        asyncpg.InterfaceError("cannot switch to state 12; another operation is in progress"),
        ConnectionRefusedError(111, "Connection refused"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed"),
        TimeoutError(),
        PoolTimeout("QueuePool limit of size 10 overflow 10 reached, connection timed out"),
        # A failover: no host is the primary yet, a demoted one answers read-only, a
        # crashed one is restarting.
        asyncpg.TargetServerAttributeNotMatched(
            'None of the hosts match the target attribute requirement "read-write"'
        ),
        _pg(asyncpg.ReadOnlySQLTransactionError, "cannot execute INSERT in a read-only txn"),
        _pg(asyncpg.InternalServerError, 'could not write init file "global/pg_internal.init"'),
    ],
    ids=lambda c: type(c).__name__,
)
def test_outages_are_recognised_bare_and_wrapped(cause: BaseException) -> None:
    assert is_outage(cause)
    assert is_outage(_wrapped(cause))
    unavailable = Unavailable("x")
    unavailable.__cause__ = _wrapped(cause)
    assert is_outage(unavailable)


def test_failover_errors_drop_the_connection_statement_errors_do_not() -> None:
    from app.db.outage import connection_lost

    read_only = _pg(asyncpg.ReadOnlySQLTransactionError, "read-only transaction")
    assert connection_lost(_wrapped(read_only))  # pointed at a demoted primary: reconnect
    assert connection_lost(ConnectionRefusedError())
    timeout = _pg(asyncpg.QueryCanceledError, "canceling statement due to statement timeout")
    assert not connection_lost(_wrapped(timeout))


def test_client_errors_and_bugs_are_not_outages() -> None:
    other = _pg(asyncpg.InternalServerError, "cache lookup failed for relation 1")
    assert not is_outage(other)  # an internal error that is no restart stays a 500
    unique = _pg(asyncpg.UniqueViolationError, "duplicate key value")
    assert not is_outage(unique) and not is_outage(_wrapped(unique))
    assert not is_outage(IntegrityError("INSERT", {}, Exception("dup")))
    assert not is_outage(ValueError("bug"))
    assert not is_outage(asyncpg.InterfaceError("cannot use Connection.transaction() here"))


def test_only_deadlocks_and_serialization_failures_are_retried() -> None:
    assert is_retryable(_wrapped(_pg(asyncpg.DeadlockDetectedError, "deadlock detected")))
    assert is_retryable(_wrapped(_pg(asyncpg.SerializationError, "could not serialize")))
    assert not is_retryable(_wrapped(_pg(asyncpg.QueryCanceledError, "statement timeout")))
    assert not is_retryable(ConnectionRefusedError())
