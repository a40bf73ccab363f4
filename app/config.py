"""Settings, read once from the environment (and an optional .env)."""

from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every setting of the service; `.env.example` lists them with their defaults."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    db_pool_size: int = 10
    db_max_overflow: int = 10

    jwt_secret: SecretStr = SecretStr("change-me-in-production-please-0123456789")
    jwt_algorithms: CsvList = Field(default_factory=lambda: ["HS256"])
    jwt_public_key: str | None = None
    jwt_private_key: str | None = None
    jwt_issuer: str = "jambo"
    jwt_audience: str = "jambo-api"
    access_token_ttl_seconds: int = 3600

    allowed_origins: CsvList = Field(default_factory=lambda: ["http://localhost:8000"])
    cors_allow_origins: CsvList = Field(default_factory=list)
    forwarded_allow_ips: str = "127.0.0.1"
    root_path: str = ""

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Jambo <no-reply@jambo.local>"

    default_phone_region: str = "KE"
    supported_languages: CsvList = Field(
        default_factory=lambda: ["en", "sw", "fr", "ar", "pt", "es", "de", "zh"]
    )
    deletion_token_ttl_hours: int = 24
    email_code_ttl_minutes: int = 10
    email_code_max_attempts: int = 5
    max_body_bytes: int = 1024 * 1024
    max_bulk_items: int = 10_000
    idempotency_retention_hours: int = 24
    idempotency_lock_seconds: int = 60

    log_level: str = "INFO"
    data_dir: str = ".data"

    @field_validator(
        "jwt_algorithms",
        "allowed_origins",
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
