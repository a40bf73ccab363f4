"""Fake data for demos and benchmarks, loaded with COPY in batches."""

import datetime as dt
import random

import asyncpg
from rich.progress import Progress
from ulid import ULID

from app.db.engine import driver_dsn

FIRST = (
    "Amina Baraka Cynthia Daniel Esther Faith Grace Hassan Imani Joseph Kamau Lulu Mariya "
    "Neema Otieno Pendo Rehema Samuel Tricia Wanjiru Zawadi Albert Raymond Fraser Amanda "
    "Vlad Jabari Nia Kofi Ayana"
).split()
LAST = (
    "Achieng Bauer Chege Dyvna Ekwueme Farah Gitau Hamisi Irungu Juma Kariuki Langat Mwangi "
    "Njoroge Odhiambo Petrov Rotich Said Tanui Wambui Norris Ryan Compton Bell Steve Johnson "
    "Brendand Okafor Mensah Diallo"
).split()
CITIES = (
    "Nairobi Mombasa Kisumu Nakuru Eldoret Thika Malindi Sydney Westmead Burwood Wyong "
    "Kampala Arusha Kigali Lagos Accra Dakar"
).split() + ["North Ryde", "Tarens Point", "Potts Point"]
STREETS = "Moi Kenyatta Jessie Charles Dover Chestnut Delhi Mountain George Ngong Haile".split()
COUNTRIES = "KE TZ UG RW NG GH SN ZA AU GB US FR DE".split()
LANGS = "en sw fr ar pt es de zh".split()

CUSTOMER_COLUMNS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "email_key",
    "phone_number",
    "nationality",
    "dob",
    "gender",
    "language",
    "address_line1",
    "address_city",
    "address_post_code",
    "address_country",
)
LOYALTY_COLUMNS = ("loyalty_id", "cardno", "discount", "client_name", "client_birthday", "is_male")


def fake_customer(rng: random.Random, n: int) -> tuple[object, ...]:
    """One plausible customer row; `n` keeps the e-mail unique."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first}.{last}.{n}@example.org".lower()  # plain ASCII: its own normal form
    return (
        ULID().to_uuid(),
        first,
        last,
        email,
        email,
        f"+2547{rng.randrange(10_000_000, 99_999_999)}",
        rng.choice(COUNTRIES),
        dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 65)),
        rng.choice(("female", "male", None)),
        rng.choice(LANGS),
        f"{rng.randrange(1, 300)} {rng.choice(STREETS)} Street",
        rng.choice(CITIES),
        str(rng.randrange(1000, 9999)),
        "Kenya",
    )


def fake_member(rng: random.Random, n: int) -> tuple[object, ...]:
    """One plausible loyalty member row."""
    import decimal

    return (
        f"L{n}",
        str(rng.randrange(10**7, 10**8)),
        decimal.Decimal(rng.randrange(0, 3000)) / 100,
        f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 65)),
        rng.random() < 0.5,
    )


async def seed_database(url: str, customers: int, loyalty: int, batch: int = 50_000) -> None:
    """COPY `customers` and `loyalty` fake rows in batches, with a progress bar."""
    rng = random.Random()
    conn = await asyncpg.connect(driver_dsn(url))
    offset = await conn.fetchval("SELECT count(*) FROM customers")
    loyalty_offset = await conn.fetchval("SELECT count(*) FROM loyalty_members")
    try:
        with Progress() as progress:
            for table, total, make, columns, start in (
                ("customers", customers, fake_customer, CUSTOMER_COLUMNS, offset),
                ("loyalty_members", loyalty, fake_member, LOYALTY_COLUMNS, loyalty_offset),
            ):
                if not total:
                    continue
                task = progress.add_task(f"{table}", total=total)
                done = 0
                while done < total:
                    size = min(batch, total - done)
                    rows = [make(rng, start + done + i) for i in range(size)]
                    await conn.copy_records_to_table(table, records=rows, columns=columns)
                    done += size
                    progress.update(task, advance=size)
        await conn.execute("ANALYZE customers; ANALYZE loyalty_members")
    finally:
        await conn.close()
