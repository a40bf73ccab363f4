"""Settings, read once from the environment (and an optional .env)."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CsvList = Annotated[list[str], NoDecode]
_PROJECT_ENV = str(Path(__file__).resolve().parent.parent / ".env")


class Settings(BaseSettings):
    """Every setting of the service; `.env.example` lists them with their defaults."""

    # The project's .env wherever `jambo` is run from, then one in the current folder.
    model_config = SettingsConfigDict(env_file=(_PROJECT_ENV, ".env"), extra="ignore")

    database_url: str | None = None
    # A session of its own, not through a transaction pooler: LISTEN for the change feed and
    # the broker relay's lock (default: DATABASE_URL).
    database_direct_url: str | None = None
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Every database wait is bounded (seconds): connecting, waiting for a pooled connection,
    # and one statement (long enough for a 10,000-member loyalty upload).
    db_connect_timeout_seconds: float = 5.0
    db_pool_timeout_seconds: float = 5.0
    db_statement_timeout_seconds: float = 30.0
    db_read_timeout_seconds: float = 5.0  # the hot reads (by id, list pages, counts)
    # `jambo serve` waits this long for a database that refuses connections before giving up.
    db_startup_wait_seconds: float = 60.0
    # How long a migration waits for a table lock before it fails (cleanly, rolled back).
    migration_lock_timeout_seconds: float = 5.0
    # Behind a transaction-mode pooler (PgBouncer): no prepared statement outlives its use.
    db_pgbouncer: bool = False
    # A streaming replica for the hot reads; the primary stays the source for everything else.
    database_read_url: str | None = None
    db_read_max_lag_seconds: float = 1.0
    db_read_after_write_seconds: float = 5.0

    # Empty: `jambo serve` refuses with DATABASE_URL set; the embedded set-up makes its own.
    jwt_secret: SecretStr = SecretStr("")
    jwt_algorithms: CsvList = Field(default_factory=lambda: ["HS256"])
    jwt_public_key: str | None = None
    jwt_private_key: str | None = None
    jwt_issuer: str = "jambo"
    jwt_audience: str = "jambo-api"
    access_token_ttl_seconds: int = 3600
    # How long a worker trusts what it read of a client's revocation (revoked: refused within).
    client_state_ttl_seconds: float = 5.0

    # Both spellings of the address `make run` prints (`jambo serve` uses its own port).
    allowed_origins: CsvList = Field(
        default_factory=lambda: ["http://127.0.0.1:8000", "http://localhost:8000"]
    )
    cors_allow_origins: CsvList = Field(default_factory=list)
    forwarded_allow_ips: str = "127.0.0.1"
    allowed_hosts: CsvList = Field(default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"])
    root_path: str = ""

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0  # one deadline for a whole send, queueing included
    smtp_max_concurrent: int = 10  # sends in flight per worker
    mail_from: str = "Jambo <no-reply@jambo.local>"

    default_phone_region: str = "KE"
    supported_languages: CsvList = Field(
        default_factory=lambda: ["en", "sw", "fr", "ar", "pt", "es", "de", "zh"]
    )
    deletion_token_ttl_hours: int = 24
    email_code_ttl_minutes: int = 10
    email_code_max_attempts: int = 5
    # Per (address, client IP): wrong guesses in an hour before that pair's hour-long refusal,
    # and codes mailed an hour; per address across all clients: the hourly ceilings.
    sign_in_max_wrong_guesses_per_hour: int = 10
    sign_in_max_codes_per_hour: int = 5
    sign_in_max_wrong_guesses_per_address_per_hour: int = 100
    sign_in_max_codes_per_address_per_hour: int = 30
    max_body_bytes: int = 1024 * 1024
    max_bulk_items: int = 10_000
    # Per worker: requests past this many in flight are shed at once (503, Retry-After).
    max_requests_in_flight: int = 200
    # Per worker: open connections (lowered to fit the file-descriptor limit).
    max_connections: int = 4096
    max_header_bytes: int = 64 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0  # the longest pause between a body's bytes
    body_deadline_seconds: float = 60.0  # a whole body, however it trickles in
    keep_alive_timeout_seconds: int = 5
    idempotency_retention_hours: int = 24
    idempotency_max_live_keys: int = 10_000  # per caller; past it → 429
    audit_retention_days: int = 365
    housekeeping_interval_seconds: float = 60.0

    # The change feed (GET /api/v1/events) and, with a broker URL, its relay to RabbitMQ.
    events_source: str = "/jambo"
    events_retention_days: int = 30
    events_broker_url: SecretStr | None = None

    log_level: str = "INFO"
    data_dir: str = ".data"

    @field_validator(
        "jwt_algorithms",
        "allowed_origins",
        "allowed_hosts",
        "cors_allow_origins",
        "supported_languages",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _one_family(cls, value: list[str]) -> list[str]:
        allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"}
        unknown = set(value) - allowed
        if unknown or not value:
            raise ValueError(f"unsupported JWT algorithms: {sorted(unknown) or 'none given'}")
        if len({alg[:2] for alg in value}) > 1:
            raise ValueError("JWT_ALGORITHMS must not mix HMAC and public-key algorithms")
        return value

    @property
    def jwt_uses_hmac(self) -> bool:
        return self.jwt_algorithms[0].startswith("HS")


@lru_cache
def get_settings() -> Settings:
    """The process's settings, built on first use."""
    return Settings()
