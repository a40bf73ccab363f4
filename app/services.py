"""Everything a process builds once: the database handle and the services on it.

The application's lifespan and every CLI command open them the same way, here.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.requests import Request

from app.auth.address_change import AddressChanges
from app.auth.revocation import ClientStates
from app.auth.server_keys import ServerKeys
from app.auth.service import AuthService
from app.auth.sign_in import SignInCodes
from app.auth.tokens import TokenVerifier
from app.config import Settings
from app.customers.service import CustomerService
from app.db.database import Database
from app.db.engine import DbTimeouts, driver_dsn, make_engine, resolve_database_url
from app.db.replica import ReadReplica
from app.events.feed import EventFeed
from app.events.signal import ChangeSignal
from app.idempotency.store import KeyStore
from app.loyalty.service import LoyaltyService
from app.mail import Outbox, make_mailer
from app.privacy.deletion import DeletionService
from app.privacy.export import ExportService
from app.tracing import traced_mailer


@dataclass(frozen=True, slots=True)
class Services:
    """The services of one process, over one database handle."""

    settings: Settings
    db: Database
    verifier: TokenVerifier
    client_states: ClientStates
    customers: CustomerService
    loyalty: LoyaltyService
    deletion: DeletionService
    export: ExportService
    auth: AuthService
    sign_in: SignInCodes
    addresses: AddressChanges
    outbox: Outbox
    idempotency: KeyStore
    events: EventFeed
    changes: ChangeSignal
    # A session of its own on the primary, never through a pooler (LISTEN, the relay's lock).
    direct_dsn: str


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Build the engine, the database handle and every service; close the pools at the end."""
    url = resolve_database_url(settings)
    engine = make_engine(url, settings)
    db = Database(
        engine,
        settings.db_pool_size,
        DbTimeouts.of(settings),
        pooled=settings.db_pgbouncer,
        replica=ReadReplica.configured(settings),
    )
    mailer = traced_mailer(make_mailer(settings), settings)
    keys = ServerKeys(db)
    outbox = Outbox(mailer)
    addresses = AddressChanges(db, settings, outbox, keys)
    direct_dsn = driver_dsn(settings.database_direct_url or url)
    try:
        yield Services(
            settings=settings,
            db=db,
            verifier=TokenVerifier(settings),
            client_states=ClientStates(db, settings.client_state_ttl_seconds),
            customers=CustomerService(db, settings, addresses),
            loyalty=LoyaltyService(db, settings),
            deletion=DeletionService(db, settings, mailer),
            export=ExportService(db),
            auth=AuthService(db, settings, keys),
            sign_in=SignInCodes(db, settings, mailer, keys),
            addresses=addresses,
            outbox=outbox,
            idempotency=KeyStore(
                settings.idempotency_retention_hours * 3600, settings.idempotency_max_live_keys
            ),
            events=EventFeed(db, settings.events_source, settings.events_retention_days),
            changes=ChangeSignal(db, direct_dsn),
            direct_dsn=direct_dsn,
        )
    finally:
        await outbox.flush()
        await db.close()


def services_of(request: Request) -> Services:
    """The process's services, built once in the lifespan (the one way a request reaches
    them; no FastAPI dependency, so as cheap as an attribute read)."""
    built: Services = request.app.state.services
    return built
