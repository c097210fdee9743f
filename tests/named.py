"""The named people and domains of the tests, as plain functions: the owner, Alice who manages
family.example, Bob who manages other.example, and Carol who owns a mailbox in family.example.
tests/conftest.py makes each a fixture for one test; a module whose tests only change what they
roll back builds them once (``module_transaction``) and hands each test fresh copies."""

import pytest
from django.contrib.auth import get_user_model

from gateway import services

PASSWORD = "correct horse battery staple"


def owner():
    return get_user_model().objects.create_superuser("owner", "", PASSWORD)


def user(name: str):
    return get_user_model().objects.create_user(name, "", PASSWORD)


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


def other(bob):
    domain = services.domain_create(
        name="other.example",
        mail_hostname="mail.other.example",
        first_mailbox="bob",
        first_mailbox_password=PASSWORD,
    )
    domain.managers.add(bob)
    return domain


def fresh(value):
    """A model instance read again from the database (what a test changes in memory stays in
    that test); any other value as it is."""
    if hasattr(value, "_meta") and value.pk is not None:
        return type(value).objects.get(pk=value.pk)
    return value


# Once per module: a module imports those of these fixtures it wants written once (conftest's
# family_saved and other_saved, in module_transaction); they stand in for conftest's own, each
# test getting fresh copies. Only for modules whose tests roll back what they change and never
# need the rows absent.


@pytest.fixture(name="alice")
def alice_once(db, family_saved):
    return fresh(family_saved["alice"])


@pytest.fixture(name="carol")
def carol_once(db, family_saved):
    return fresh(family_saved["carol"])


@pytest.fixture(name="family")
def family_once(db, family_saved):
    return fresh(family_saved["family"])


@pytest.fixture(name="bob")
def bob_once(db, other_saved):
    return fresh(other_saved["bob"])


@pytest.fixture(name="other")
def other_once(db, other_saved):
    return fresh(other_saved["other"])
