"""One normal form for e-mail addresses: `customers.email_key` (Unicode NFKC, then
case-folded, computed in Python: PostgreSQL's lower() folds case differently), unique in
place of the unique lower(email) index.

Addresses that were distinct under lower() but are one under the new form (`İx@…` and
`i̇x@…`, `straße@…` and `STRASSE@…`, full-width letters…) are reported: the oldest customer
of each such group keeps the address for sign-in and uniqueness; the others keep their
stored e-mail, shown as before, but get no key (they cannot sign in by code or be found by
that address until staff give them another). The migration prints how many groups and
which customer ids, never the addresses.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sys
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 10_000


def _key(address: str) -> str:
    """The same form as app.customers.validation.address_key (kept here: a migration must
    not change when the application code does)."""
    text = address.strip()
    try:
        text = validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        pass
    return unicodedata.normalize("NFKC", text).casefold()


def upgrade() -> None:
    op.add_column("customers", sa.Column("email_key", sa.Text(), nullable=True))
    bind = op.get_bind()
    last = None
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, email FROM customers WHERE email IS NOT NULL"
                + (" AND id > :last" if last is not None else "")
                + " ORDER BY id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        if not rows:
            break
        bind.execute(
            sa.text(
                "UPDATE customers SET email_key = keyed.key FROM"
                " (SELECT unnest(CAST(:ids AS uuid[])) AS id, unnest(CAST(:keys AS text[])) AS key)"
                " AS keyed WHERE customers.id = keyed.id"
            ),
            {"ids": [r.id for r in rows], "keys": [_key(r.email) for r in rows]},
        )
        last = rows[-1].id
    groups = bind.execute(
        sa.text(
            "SELECT array_agg(id ORDER BY created_at, id) AS ids FROM customers"
            " WHERE email_key IS NOT NULL GROUP BY email_key HAVING count(*) > 1"
        )
    ).all()
    losers = [customer for group in groups for customer in group.ids[1:]]
    if losers:
        bind.execute(
            sa.text("UPDATE customers SET email_key = NULL WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": losers},
        )
        print(
            f"migration 0009: {len(groups)} e-mail address(es) were shared by"
            f" {len(groups) + len(losers)} customers under the new normal form; the oldest"
            " customer of each keeps the address for sign-in. These customers keep their"
            " stored e-mail but cannot sign in by code until it is changed:"
            f" {', '.join(str(c) for c in losers)}",
            file=sys.stderr,
        )
    op.drop_index("uq_customers_lower_email", table_name="customers")
    op.create_index("uq_customers_email_key", "customers", ["email_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_customers_email_key", table_name="customers")
    op.drop_column("customers", "email_key")
    op.create_index("uq_customers_lower_email", "customers", [sa.text("lower(email)")], unique=True)
