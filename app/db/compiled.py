"""Core statements compiled once for the raw asyncpg pool."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect


@dataclass(frozen=True, slots=True)
class Statement:
    """A Core statement compiled for the raw asyncpg pool: SQL with $n placeholders, the
    parameter name behind each of them, and the values fixed when the statement was built."""

    sql: str
    names: tuple[str, ...]
    fixed: dict[str, object]

    def args(self, values: dict[str, object]) -> list[object]:
        values = self.fixed | values
        return [values[name] for name in self.names]


_ASYNCPG = asyncpg_dialect()


def compile_statement(stmt: Select[Any]) -> Statement:
    """Compile once, run many times: building and compiling cost more than running."""
    compiled = stmt.compile(dialect=_ASYNCPG)
    fixed = {k: v for k, v in compiled.params.items() if v is not None}
    return Statement(str(compiled), tuple(compiled.positiontup or ()), fixed)
