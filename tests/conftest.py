"""Named people and domains shared by the tests: the owner, Alice who manages family.example,
Bob who manages other.example, and Carol who owns a mailbox in family.example."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from gateway import services
from gateway.models import ApiToken

PASSWORD = "correct horse battery staple"


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_superuser("owner", "", PASSWORD)


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", "", PASSWORD)


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "", PASSWORD)


@pytest.fixture
def carol(db):
    return get_user_model().objects.create_user("carol", "", PASSWORD)


@pytest.fixture
def family(alice, carol):
    domain = services.domain_create(
        name="family.example",
        mail_hostname="mail.family.example",
        first_mailbox="alice",
        first_mailbox_password=PASSWORD,
    )
    domain.managers.add(alice)
    services.mailbox_create(domain=domain, local_part="carol", password=PASSWORD, owner=carol)
    return domain


@pytest.fixture
def other(bob):
    domain = services.domain_create(
        name="other.example",
        mail_hostname="mail.other.example",
        first_mailbox="bob",
        first_mailbox_password=PASSWORD,
    )
    domain.managers.add(bob)
    return domain


def api_client_for(user) -> APIClient:
    _, token = ApiToken.issue(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def api():
    return api_client_for
