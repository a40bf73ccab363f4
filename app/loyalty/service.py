"""Loyalty-register use cases: validation, the set-based bulk upsert, transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.bodies import OFF_LOOP_ITEMS, run_off_loop_if
from app.config import Settings
from app.db.database import Database
from app.errors import DomainError, Invalid, NotFound
from app.loyalty import repository as repo
from app.loyalty.repository import ListQuery
from app.loyalty.schemas import MemberRecord, parse_item

NOT_FOUND = "Not found"


class BulkInvalid(DomainError):
    """Some items of a bulk upload are invalid: one error dict per item ({} when valid)."""

    def __init__(self, errors: list[dict[str, list[str]]]) -> None:
        super().__init__("Invalid items in the upload.")
        self.errors = errors


class TooManyItems(DomainError):
    """A bulk upload over the configured item limit."""


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """What an upload did, counted as if its items were applied one after another."""

    inserted: int
    updated: int


@dataclass(frozen=True, slots=True)
class Validated:
    """Cleaned items (in input order) and one error dict per input item."""

    values: list[dict[str, Any]]
    errors: list[dict[str, list[str]]]

    @property
    def ok(self) -> bool:
        return not any(self.errors)


def dedupe(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per loyalty_id: the values of its last item, the position (`ord`) of its first."""
    first: dict[str, int] = {}
    last: dict[str, dict[str, Any]] = {}
    for position, item in enumerate(items):
        key = item["loyalty_id"]
        first.setdefault(key, position)
        last[key] = item
    return [{**last[key], "ord": first[key]} for key in first]


class LoyaltyService:
    """Read, upload, change and delete loyalty members."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def page(self, query: ListQuery) -> tuple[int, list[MemberRecord]]:
        """Total count and one page of members."""
        async with self.db.autocommit() as conn:
            return await repo.page(conn, query)

    async def get(self, loyalty_id: str) -> MemberRecord:
        """One member, or NotFound."""
        async with self.db.autocommit() as conn:
            record = await repo.get(conn, loyalty_id)
        if record is None:
            raise NotFound(NOT_FOUND)
        return record

    def validate(self, raw_items: Sequence[object]) -> Validated:
        """Clean every item; errors are collected, never raised."""
        values: list[dict[str, Any]] = []
        errors: list[dict[str, list[str]]] = []
        for raw in raw_items:
            cleaned, problems = parse_item(raw)
            errors.append(problems)
            if not problems:
                values.append(cleaned)
        return Validated(values, errors)

    async def upload(self, raw_items: Sequence[object], *, actor: str) -> UpsertCounts:
        """Validate and upsert a whole upload, all or nothing (BulkInvalid lists the errors)."""
        limit = self.settings.max_bulk_items
        if len(raw_items) > limit:
            raise TooManyItems(f"Ensure this field has no more than {limit} elements.")
        large = len(raw_items) > OFF_LOOP_ITEMS
        checked = await run_off_loop_if(large, self.validate, raw_items)
        if not checked.ok:
            raise BulkInvalid(checked.errors)
        if not checked.values:
            return UpsertCounts(0, 0)
        rows = await run_off_loop_if(large, dedupe, checked.values)
        return await self._write(rows, len(checked.values), actor)

    async def upload_one(self, raw: object, *, actor: str) -> tuple[UpsertCounts, str]:
        """Validate and upsert one item (Invalid with its field errors); returns its key."""
        cleaned, problems = parse_item(raw)
        if problems:
            raise Invalid(problems)
        return await self.upsert([cleaned], actor=actor), cleaned["loyalty_id"]

    async def upsert(self, values: Sequence[dict[str, Any]], *, actor: str) -> UpsertCounts:
        """Write cleaned items in one statement (with one audit line per member written); a
        repeated key is one insert then updates."""
        if not values:
            return UpsertCounts(0, 0)
        return await self._write(dedupe(values), len(values), actor)

    async def _write(self, rows: Sequence[dict[str, Any]], given: int, actor: str) -> UpsertCounts:
        """Upsert deduplicated rows; `given` items were uploaded (repeats count as updates)."""
        async with self.db.autocommit() as conn:
            inserted = await repo.upsert(conn, rows, actor)
        return UpsertCounts(inserted, given - inserted)

    async def replace(
        self, loyalty_id: str, raw: object, *, partial: bool, actor: str
    ) -> MemberRecord:
        """PUT (every field, may rename) or PATCH (only the fields given)."""
        cleaned, problems = parse_item(raw, partial=partial)
        if problems:
            await self.get(loyalty_id)  # as DRF: an unknown member is a 404 before any 400
            raise Invalid(problems)
        async with self.db.transaction() as conn:
            if not cleaned:
                record = await repo.get(conn, loyalty_id)
            else:
                record = await repo.update_one(conn, loyalty_id, cleaned, actor)
        if record is None:
            raise NotFound(NOT_FOUND)
        return record

    async def delete(self, loyalty_id: str, *, actor: str) -> None:
        """Remove a member (with its audit line), or NotFound."""
        async with self.db.transaction() as conn:
            if not await repo.delete_one(conn, loyalty_id, actor):
                raise NotFound(NOT_FOUND)

    async def export(self) -> AsyncIterator[MemberRecord]:
        """Every member, in creation order, streamed (a server-side cursor needs a transaction)."""
        async with self.db.transaction() as conn:
            async for record in repo.stream_all(conn):
                yield record
