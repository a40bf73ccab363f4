"""Changing one's own sign-in address: the new address takes effect only once the code mailed
to it is entered (so a stolen one-hour token cannot become a permanent takeover), and the
old address is told, when the change is asked for and when it is made.

Whether the new address is already registered is never in an answer: the caller always
hears "pending"; the mail to the new address says the address is taken instead of carrying
a code (so its owner learns of it and the caller, unable to confirm, learns nothing). Staff
changes (v1, Jambo's staff routes) are made at once; their notice to the old address is
sent by the customer service.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from sqlalchemy import text

from app.auth.server_keys import EMAIL_CODES, ServerKeys
from app.config import Settings
from app.customers import repository as customers
from app.customers.schemas import CustomerRecord
from app.customers.validation import address_key
from app.db.database import Database
from app.errors import Invalid, Message, NotFound
from app.mail import Outbox

MAX_TRIES = 5
WRONG_CODE = Message("The code is wrong or has expired.", "invalid_code")

_PUT = text(
    "INSERT INTO address_changes (customer_id, new_email, code_hash, attempts, expires_at)"
    " VALUES (:customer, :email, :hash, 0, now() + make_interval(mins => :ttl))"
    " ON CONFLICT (customer_id) DO UPDATE SET new_email = excluded.new_email,"
    " code_hash = excluded.code_hash, attempts = 0, created_at = now(),"
    " expires_at = excluded.expires_at"
)
_LIVE = text(
    "SELECT new_email, code_hash, attempts FROM address_changes"
    " WHERE customer_id = :customer AND expires_at > now()"
)
_TRIED = text("UPDATE address_changes SET attempts = attempts + 1 WHERE customer_id = :customer")
_DONE = text("DELETE FROM address_changes WHERE customer_id = :customer")


class AddressChanges:
    """Pending changes of customers' sign-in addresses, and their confirmation."""

    def __init__(self, db: Database, settings: Settings, outbox: Outbox, keys: ServerKeys) -> None:
        self.db = db
        self.settings = settings
        self.outbox = outbox
        self.keys = keys

    async def _hash(self, code: str) -> bytes:
        key = await self.keys.get(EMAIL_CODES)
        return hmac.new(key, code.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    async def request(self, customer: CustomerRecord, new_email: str) -> None:
        """Make `new_email` the customer's pending sign-in address (replacing any pending
        one); mail it a code, or a notice if it is taken; tell the current address."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        ttl = self.settings.email_code_ttl_minutes
        async with self.db.transaction() as conn:
            taken = await customers.address_taken(conn, new_email)
            await conn.execute(
                _PUT,
                {
                    "customer": customer.id,
                    "email": new_email,
                    "hash": None if taken else await self._hash(code),
                    "ttl": ttl,
                },
            )
        if taken:
            self.outbox.send_later(
                new_email,
                "Your address and a Jambo account",
                "Someone asked to make this address the sign-in address of a Jambo account, "
                "but it is already registered, so nothing was changed. If that was you, sign "
                "in with this address instead.\n",
            )
        else:
            self.outbox.send_later(
                new_email,
                "Confirm your new Jambo sign-in address",
                f"Your confirmation code is {code}.\n\nEnter it within {ttl} minutes to make "
                "this your sign-in address. If you did not ask for this, ignore this mail.\n",
            )
        if customer.email:
            self.outbox.send_later(
                customer.email,
                "A change of your Jambo sign-in address was requested",
                f"Someone signed in to your account asked to change its sign-in address to "
                f"{new_email}. It changes only once the code sent there is entered. If this "
                "was not you, sign in and change your details, and ask us for help.\n",
            )

    async def pending(self, customer_id: uuid.UUID) -> str | None:
        """The address waiting for confirmation, if any."""
        async with self.db.autocommit() as conn:
            row = (await conn.execute(_LIVE, {"customer": customer_id})).first()
        return row.new_email if row is not None else None

    async def confirm(self, customer_id: uuid.UUID, code: str, actor: str) -> CustomerRecord:
        """Make the pending address the sign-in address (Invalid for a wrong or expired code;
        Conflict if the address was taken meanwhile); tell the old address."""
        code_hash = await self._hash(code.strip())
        async with self.db.transaction() as conn:
            row = (await conn.execute(_LIVE, {"customer": customer_id})).first()
            right = (
                row is not None
                and row.code_hash is not None
                and row.attempts < MAX_TRIES
                and hmac.compare_digest(bytes(row.code_hash), code_hash)
            )
            if row is not None and not right:
                await conn.execute(_TRIED, {"customer": customer_id})
            updated = None
            if right and row is not None:
                updated = await customers.update_one(
                    conn, customer_id, {"email": row.new_email}, actor
                )
                await conn.execute(_DONE, {"customer": customer_id})
        if not right:
            raise Invalid({"code": [WRONG_CODE]})
        if updated is None:
            raise NotFound("Customer not found.")
        old = updated.previous_email
        if old and address_key(old) != address_key(updated.record.email or ""):
            self.outbox.send_later(
                old,
                "Your Jambo sign-in address was changed",
                f"The sign-in address of your account is now {updated.record.email}. If this "
                "was not you, ask us for help.\n",
            )
        return updated.record

    async def staff_changed(self, previous: str | None, record: CustomerRecord) -> None:
        """Tell the old address of a change staff made (after it committed)."""
        if not previous or address_key(previous) == address_key(record.email or ""):
            return
        async with self.db.autocommit() as conn:  # a change pending from before is moot
            await conn.execute(_DONE, {"customer": record.id})
        self.outbox.send_later(
            previous,
            "Your Jambo sign-in address was changed",
            f"Our staff changed the sign-in address of your account to "
            f"{record.email or '(none)'}. If you did not ask for this, contact us.\n",
        )
