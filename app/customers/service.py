"""Customer use cases: rules and transactions. Contracts call these and nothing below."""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app import audit
from app.auth.address_change import AddressChanges
from app.config import Settings
from app.customers import repository as repo
from app.customers import search
from app.customers.rules import clean_changes
from app.customers.schemas import CustomerRecord
from app.customers.search import CustomerFilter, Page, SortKey
from app.customers.validation import address_key
from app.db.database import Database
from app.errors import NotFound, PreconditionFailed, Unauthenticated
from app.ids import new_id, parse_ulid


async def erase(
    conn: AsyncConnection, customer_id: uuid.UUID, actor: str, expected_version: int | None = None
) -> bool:
    """Delete a customer and, by cascade, every row of their data, with the audit lines, in
    the caller's transaction; False when there was no such customer (at that version)."""
    # The memberships the delete cascades to get their lines too (first: the cascade removes
    # them; a refused delete rolls these lines back with the caller's transaction).
    await audit.record_members_of_customer(conn, customer_id, "loyalty_member.deleted", actor)
    if not await repo.delete_one(conn, customer_id, expected_version):
        return False
    await audit.record(conn, "customer.deleted", customer_id, actor)
    return True


@dataclass(frozen=True, slots=True)
class OwnUpdate:
    """A customer's own change as saved, and the sign-in address left pending, if any."""

    record: CustomerRecord
    pending_email: str | None


class CustomerService:
    """Create, read, change and delete customers in one store."""

    def __init__(self, db: Database, settings: Settings, addresses: AddressChanges) -> None:
        self.db = db
        self.settings = settings
        self.addresses = addresses

    async def get(self, customer_id: uuid.UUID) -> CustomerRecord:
        """One customer, or NotFound."""
        record = await repo.fetch_by_id(self.db, customer_id)
        if record is None:
            raise NotFound("Customer not found.")
        return record

    async def for_token(self, sub: str) -> CustomerRecord:
        """The customer a customer token names; one that no longer exists is Unauthenticated."""
        customer_id = parse_ulid(sub)
        record = await repo.fetch_by_id(self.db, customer_id) if customer_id else None
        if record is None:
            raise Unauthenticated("Customer no longer exists.", invalid_token=True)
        return record

    async def create(self, raw: Mapping[str, Any], *, actor: str) -> CustomerRecord:
        """Validate and insert a new customer (with its audit line)."""
        values = clean_changes(raw, self.settings, creating=True)
        customer_id = new_id()
        self.db.wrote_data_of(customer_id)
        # One statement (the row and its audit line): autocommit spares BEGIN and COMMIT.
        async with self.db.autocommit() as conn:
            return await repo.insert_one(conn, {"id": customer_id, **values}, actor)

    async def update(
        self,
        customer_id: uuid.UUID,
        raw: Mapping[str, Any],
        expected_version: int | None = None,
        *,
        actor: str,
    ) -> CustomerRecord:
        """Validate and apply changes (staff: a new e-mail address takes effect at once, and the
        old address is told); a stale expected version raises PreconditionFailed."""
        values = clean_changes(raw, self.settings)
        updated = await self._apply(customer_id, values, actor, expected_version)
        if "email" in values:
            await self.addresses.staff_changed(updated.previous_email, updated.record)
        return updated.record

    async def update_own(
        self, customer: CustomerRecord, raw: Mapping[str, Any], *, actor: str
    ) -> OwnUpdate:
        """A customer's change of their own record: every field at once but a new sign-in
        address, which waits for the code mailed to it (see app/auth/address_change.py)."""
        values = clean_changes(raw, self.settings)
        new_email = values.get("email")
        moving = new_email is not None and address_key(new_email) != address_key(
            customer.email or ""
        )
        if moving:
            values.pop("email")  # written only once confirmed
        record = customer
        if values:
            record = (await self._apply(customer.id, values, actor)).record
        if moving:
            assert new_email is not None
            await self.addresses.request(record, new_email)
        return OwnUpdate(record, await self.addresses.pending(customer.id))

    async def _apply(
        self,
        customer_id: uuid.UUID,
        values: dict[str, Any],
        actor: str,
        expected_version: int | None = None,
    ) -> repo.Updated:
        async with self.db.transaction() as conn:
            updated = await repo.update_one(conn, customer_id, values, actor, expected_version)
            if updated is None:
                if expected_version is not None and await repo.exists(conn, customer_id):
                    raise PreconditionFailed("The customer was changed by someone else.")
                raise NotFound("Customer not found.")
            return updated

    async def delete(
        self, customer_id: uuid.UUID, actor: str, expected_version: int | None = None
    ) -> None:
        """Delete the customer and every row of their data; leave an audit line."""
        async with self.db.transaction() as conn:
            if not await erase(conn, customer_id, actor, expected_version):
                if expected_version is not None and await repo.exists(conn, customer_id):
                    raise PreconditionFailed("The customer was changed by someone else.")
                raise NotFound("Customer not found.")

    def check(self, raw: Mapping[str, Any], *, creating: bool = False) -> dict[str, Any]:
        """Validate changes without saving them: the clean values, or Invalid with every
        finding (for contracts that report their own rules and the core's together)."""
        return clean_changes(raw, self.settings, creating=creating)

    async def find(
        self, criteria: CustomerFilter, order: Sequence[SortKey], offset: int, limit: int
    ) -> Page:
        """One page of the customers matching `criteria`, with the total."""
        return await search.find(self.db, criteria, order, offset, limit)

    async def page(self, offset: int, limit: int) -> tuple[int, Sequence[CustomerRecord]]:
        """Customers in creation order, with the total count."""
        return await repo.page_in_creation_order(self.db, offset, limit)
