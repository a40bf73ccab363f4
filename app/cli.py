"""The `jambo` command: serve, migrate, tokens, API clients and fake data."""

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from app.config import Settings, get_settings
from app.db.embedded import db_app
from app.db.engine import resolve_database_url
from app.loyalty.cli import loyalty_app
from app.server import origins_for, port_problem

if TYPE_CHECKING:
    from app.auth.service import AuthService

T = TypeVar("T")
app = typer.Typer(
    help="Jambo customer-management service.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold settings and tokens; pages of them
)
clients_app = typer.Typer(
    help="API clients for the client-credentials grant.", no_args_is_help=True
)
app.add_typer(clients_app, name="clients")
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def migrate_to_head(database_url: str | None = None) -> None:
    """Apply every Alembic migration (the embedded server is started when needed)."""
    from alembic import command

    from app.db.migrations import alembic_config

    command.upgrade(alembic_config(database_url or resolve_database_url(get_settings())), "head")


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest migration."""
    migrate_to_head()
    console.print("[green]database at head[/green]")


def refuse_weak_secret(settings: Settings) -> None:
    """Exit (code 2) before serving a real database with a guessable JWT_SECRET; in the
    embedded set-up make sure the kept secret exists before any worker starts."""
    from app.auth.signing import database_configured, hmac_secret, secret_problem

    if not database_configured(settings):
        if settings.jwt_uses_hmac:
            hmac_secret(settings)  # made now, once: the workers then all read the same one
        return
    problem = secret_problem(settings)
    if problem:
        console.print(f"[red]refusing to serve:[/red] {problem} (DATABASE_URL is set).")
        raise typer.Exit(2)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations before serving")
    ] = os.environ.get("RUN_MIGRATIONS", "1") == "1",
    print_token: Annotated[bool, typer.Option(help="Print a staff token to try the API")] = False,
) -> None:
    """Serve the API with uvicorn (embedded PostgreSQL when DATABASE_URL is unset)."""
    import uvicorn

    problem = port_problem(host, port)
    if problem:
        console.print(f"[red]{problem}[/red]", soft_wrap=True)
        raise typer.Exit(1)
    if "allowed_origins" not in get_settings().model_fields_set:
        # The default deletion-link origins follow the address actually served.
        os.environ["ALLOWED_ORIGINS"] = ",".join(origins_for(host, port))
        get_settings.cache_clear()

    from app.auth.signing import database_configured
    from app.server import uvicorn_options

    settings = get_settings()
    embedded = not database_configured(settings)  # asked before the embedded URL is exported
    refuse_weak_secret(settings)
    url = resolve_database_url(settings)  # exported: every worker shares the database
    from app.db.migrations import schema_mismatch, wait_until_reachable

    # A database that refuses connections now (starting, failing over) is waited for.
    unreachable = wait_until_reachable(
        url,
        settings.db_startup_wait_seconds,
        settings.db_connect_timeout_seconds,
        lambda line: console.print(f"jambo serve: {line}", soft_wrap=True),
    )
    if unreachable:
        console.print(f"[red]jambo serve: the database: {unreachable}[/red]", soft_wrap=True)
        raise typer.Exit(code=1)
    if migrate_first:
        migrate_to_head()
    # A schema behind (or ahead of) this build would answer 500s: refuse to start instead.
    problem = schema_mismatch(url, settings.db_connect_timeout_seconds)
    if problem:
        console.print(f"[red]jambo serve: refusing to start: {problem}[/red]", soft_wrap=True)
        raise typer.Exit(code=1)
    if print_token:
        _print_welcome(settings, host, port, embedded)
    if embedded:
        from app.dev_reset import forget_service, record_service

        record_service(settings.data_dir)  # so that `jambo reset` can stop this service
    from app.tracing import adopt_env_files

    adopt_env_files(Settings.model_config.get("env_file"))  # OTEL_* from .env for each worker
    from app.metrics import share_between_workers

    stop_sharing = share_between_workers(workers)  # one /metrics for every worker
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            proxy_headers=False,  # the app applies X-Forwarded-* itself (FORWARDED_ALLOW_IPS)
            # Header cap, header/body read timeouts, keep-alive and connection cap (server.py).
            **uvicorn_options(settings),
            timeout_graceful_shutdown=20,
            log_config=None,
            access_log=False,
        )
    finally:
        stop_sharing()
        if embedded:
            forget_service(settings.data_dir)


def _print_welcome(settings: Settings, host: str, port: int, embedded: bool) -> None:
    """Where the service is, how to sign in at /docs, and a staff token as the last line."""
    from app.auth.tokens import STAFF_SCOPES, mint_token

    base = f"http://{host}:{port}"
    console.print(f"\n[bold]Jambo[/bold] on {base} (docs: {base}/docs)", soft_wrap=True)
    if embedded:
        from app.dev_client import ensure_dev_client

        client_id, secret = _with_auth_service(
            lambda service: ensure_dev_client(service, settings.data_dir)
        )
        console.print(
            "Sign in at /docs: Authorize → OAuth2 (every staff scope)\n"
            f"  client_id: {client_id}\n  client_secret: {secret}",
            soft_wrap=True,
        )
    token = mint_token(settings, "cli-staff", "staff", STAFF_SCOPES, 12 * 3600)
    console.print(
        "A staff token (all scopes, valid 12 h) follows; try it with\n"
        f'  curl -H "Authorization: Bearer $TOKEN" {base}/api/customers\n',
        soft_wrap=True,
    )
    print(token, flush=True)


@app.command()
def token(
    staff: Annotated[bool, typer.Option("--staff", help="A staff token")] = False,
    customer: Annotated[str | None, typer.Option("--customer", help="A customer's ULID")] = None,
    scope: Annotated[str | None, typer.Option(help="Space-separated staff scopes")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 3600,
    sub: Annotated[str, typer.Option(help="Subject of a staff token")] = "cli-staff",
) -> None:
    """Print a signed access token."""
    from app.auth.tokens import STAFF_SCOPES, mint_token

    settings = get_settings()
    if staff == bool(customer):
        raise typer.BadParameter("give exactly one of --staff or --customer ULID")
    if customer:
        print(mint_token(settings, customer.upper(), "customer", (), ttl))
    else:
        scopes = scope.split() if scope else list(STAFF_SCOPES)
        print(mint_token(settings, sub, "staff", scopes, ttl))


def _with_auth_service(work: "Callable[[AuthService], Awaitable[T]]") -> T:
    """Run `work` with the auth service over the configured database."""
    from app.services import open_services

    async def run() -> T:
        async with open_services(get_settings()) as services:
            return await work(services.auth)

    return asyncio.run(run())


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Argument(help="A name for the client")],
    scope: Annotated[str, typer.Option(help="Space-separated scopes")] = "customers:read",
) -> None:
    """Register an API client and print its id and secret (shown only this once)."""
    client_id, secret = _with_auth_service(
        lambda service: service.create_client(name, scope.split())
    )
    print(f"client_id={client_id}\nclient_secret={secret}")


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Argument(help="The client id to revoke")],
) -> None:
    """Revoke a client: no new tokens, and its tokens are refused within seconds."""
    if not _with_auth_service(lambda service: service.revoke_client(client_id)):
        console.print(f"[red]no client {client_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"client {client_id} revoked")


@clients_app.command("list")
def clients_list() -> None:
    """List the registered clients (never their secrets)."""
    rows = _with_auth_service(lambda service: service.list_clients())
    print("client_id\tname\tscopes\trevoked\tcreated_at")
    for row in rows:
        print("\t".join(str(row[k]) for k in ("client_id", "name", "scopes", "revoked", "created")))


@app.command()
def mail(
    count: Annotated[int, typer.Option("--count", "-n", help="How many, newest first")] = 5,
    to: Annotated[str | None, typer.Option(help="Only the mail to this address")] = None,
    code: Annotated[
        bool, typer.Option("--code", help="Print only the newest code (for scripts)")
    ] = False,
    body: Annotated[bool, typer.Option("--body", help="Print each message whole")] = False,
) -> None:
    """Show the newest development mail (kept while SMTP_HOST is unset): codes and links."""
    from app import dev_mailbox

    settings = get_settings()
    if settings.smtp_host:
        console.print(f"SMTP_HOST is set ({settings.smtp_host}): mail is delivered, not kept.")
    found = dev_mailbox.latest(settings.data_dir, max(1, count), to)
    if code:
        codes = [m.code for m in found if m.code]
        if not codes:
            console.print("[red]no code in the kept mail[/red]" + (f" to {to}" if to else ""))
            raise typer.Exit(1)
        print(codes[0])
        return
    if not found:
        folder = dev_mailbox.mail_folder(settings.data_dir)
        console.print(f"no mail kept in {folder}" + (f" to {to}" if to else ""))
        return
    for message in found:
        when = message.sent_at[:19].replace("T", " ")
        print(f"{when} UTC  to {message.to}  {message.subject}")
        if body:
            print("    " + message.body.rstrip().replace("\n", "\n    "))
            continue
        if message.code:
            print(f"    code: {message.code}")
        for link in message.links:
            print(f"    link: {link}")


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first")] = False,
) -> None:
    """Start over empty: stop the service and the embedded PostgreSQL, delete their data
    (customers, members, API clients, the JWT secret and so every token, the kept mail)."""
    from app.auth.signing import database_configured
    from app.db.embedded import data_path
    from app.dev_reset import reset as start_over

    settings = get_settings()
    if database_configured(settings):
        console.print(
            "[red]DATABASE_URL is set:[/red] jambo reset only empties the embedded PostgreSQL "
            "of the development set-up; drop and re-create your own database yourself.",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    folder = data_path(settings.data_dir)
    if not yes and not typer.confirm(
        f"Delete every customer, member, API client and token of the set-up in {folder}?"
    ):
        raise typer.Exit(1)
    done = start_over(settings.data_dir)
    service = f"jambo serve (pid {done.service_pid})" if done.service_pid else None
    stopped = [s for s in (service, done.database_stopped and "the embedded PostgreSQL") if s]
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    console.print(f"removed from {folder}: {', '.join(done.removed) or 'nothing (already empty)'}")
    tokens = (
        "JWT_SECRET is set, so tokens signed with it stay valid until they expire"
        if settings.jwt_secret.get_secret_value()
        else "a new JWT secret will be made, so every token issued until now is refused "
        "(make run's and jambo token's included)"
    )
    console.print(
        "Tokens and clients go too: every API client is gone (make run prints a new one for "
        f"/docs; jambo clients create makes others), and {tokens}.\n"
        "`make run` starts again, empty.",
        soft_wrap=True,
    )


@app.command()
def seed(
    customers: Annotated[int, typer.Option(help="How many fake customers")] = 1000,
    loyalty: Annotated[int, typer.Option(help="How many fake loyalty members")] = 0,
    batch: Annotated[int, typer.Option(help="Rows per COPY batch")] = 50_000,
) -> None:
    """Insert realistic fake customers and loyalty members (COPY in batches)."""
    from app.seed import seed_database

    asyncio.run(seed_database(resolve_database_url(get_settings()), customers, loyalty, batch))


if __name__ == "__main__":
    app()
