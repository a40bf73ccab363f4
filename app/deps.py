"""Request-scoped access to the services built in the lifespan."""

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.customers.service import CustomerService
from app.privacy.service import DeletionService


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _customers(request: Request) -> CustomerService:
    service: CustomerService = request.app.state.customers
    return service


def _deletion(request: Request) -> DeletionService:
    service: DeletionService = request.app.state.deletion
    return service


SettingsDep = Annotated[Settings, Depends(_settings)]
CustomersDep = Annotated[CustomerService, Depends(_customers)]
DeletionDep = Annotated[DeletionService, Depends(_deletion)]
