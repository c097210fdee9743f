"""Small helpers the tests share: a sweep over values (the first in the fast loop), the control
characters no field may carry, and clients for the generic pages and the API."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from gateway.models import ApiToken

CONTROL_CHARACTERS = ["\n", "\r", "\x00", "\x1b", "\u2028"]


def sweep(values: list) -> list:
    """Parameters for a sweep over ``values`` (one per field, say): the first runs in the fast
    loop, the rest are marked slow and run with the whole suite."""
    first, *rest = values
    return [first, *(pytest.param(value, marks=pytest.mark.slow) for value in rest)]


def page_url(model, page: str, *args) -> str:
    """The URL of one of a model's generic pages (``gateway.crud``): list, create, update or
    delete, named in the namespace of the model's app."""
    return reverse(f"{model._meta.app_label}:{model._meta.model_name}-{page}", args=args)


def client_for(token: str) -> APIClient:
    """An API client that sends ``token``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def api_client_for(user) -> APIClient:
    _, token = ApiToken.issue(user=user, name="tests")
    return client_for(token)
