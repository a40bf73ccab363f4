"""Request-scoped access to the services built in the lifespan.

Every dependency is `async def`: FastAPI runs plain `def` dependencies in a thread pool,
which costs more than the whole database round trip on the hot paths.
"""

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.customers.service import CustomerService
from app.privacy.export import ExportService
from app.privacy.service import DeletionService


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def customers_of(request: Request) -> CustomerService:
    """The customer service, for routes that skip the dependency (each FastAPI dependency
    costs about 14 µs a request: on the hottest reads that is a visible share)."""
    service: CustomerService = request.app.state.customers
    return service


async def _customers(request: Request) -> CustomerService:
    return customers_of(request)


async def _deletion(request: Request) -> DeletionService:
    service: DeletionService = request.app.state.deletion
    return service


async def _export(request: Request) -> ExportService:
    return ExportService(request.app.state.db)


SettingsDep = Annotated[Settings, Depends(_settings)]
CustomersDep = Annotated[CustomerService, Depends(_customers)]
DeletionDep = Annotated[DeletionService, Depends(_deletion)]
ExportDep = Annotated[ExportService, Depends(_export)]
