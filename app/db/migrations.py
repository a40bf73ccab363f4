"""Where the Alembic migrations live, and the revision this build expects."""

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's config: alembic.ini from the working directory (the container), else the source."""
    root = Path.cwd() if (Path.cwd() / "alembic.ini").is_file() else _SOURCE_ROOT
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def head_revision() -> str | None:
    """The newest migration shipped with this build."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
