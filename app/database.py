"""The engine handle services use: a transaction for writes, an autocommit connection for reads."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import Unavailable


@contextmanager
def _outage_is_unavailable() -> Iterator[None]:
    """Turn a lost or refused database connection into Unavailable (a clean 503)."""
    try:
        yield
    except (OperationalError, InterfaceError, OSError) as exc:
        raise Unavailable("The database is unavailable, try again shortly.") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("The database is unavailable, try again shortly.") from exc
        raise


class Database:
    """Wraps the engine so services never see pools or isolation levels."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Reads skip BEGIN/ROLLBACK: one round trip per query on the hot paths.
        self.reader = engine.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with _outage_is_unavailable():
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection for single-statement reads."""
        with _outage_is_unavailable():
            async with self.reader.connect() as conn:
                yield conn


def get_database(request: Request) -> Database:
    """The process's Database, built in the lifespan."""
    db: Database = request.app.state.db
    return db


DatabaseDep = Annotated[Database, Depends(get_database)]
