"""How a route reaches what the lifespan built: `services(request)`, and the `Annotated`
aliases below, which are that accessor as a dependency.

Every dependency is `async def`: FastAPI runs plain `def` dependencies in a thread pool,
which costs more than the whole database round trip on the hot paths. The hottest reads call
`services(request)` directly (each FastAPI dependency costs about 14 µs a request).
"""

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.customers.service import CustomerService
from app.privacy.deletion import DeletionService
from app.privacy.export import ExportService
from app.services import services_of

services = services_of  # the accessor every route uses, directly or through the aliases


async def _settings(request: Request) -> Settings:
    return services(request).settings


async def _customers(request: Request) -> CustomerService:
    return services(request).customers


async def _deletion(request: Request) -> DeletionService:
    return services(request).deletion


async def _export(request: Request) -> ExportService:
    return services(request).export


SettingsDep = Annotated[Settings, Depends(_settings)]
CustomersDep = Annotated[CustomerService, Depends(_customers)]
DeletionDep = Annotated[DeletionService, Depends(_deletion)]
ExportDep = Annotated[ExportService, Depends(_export)]
