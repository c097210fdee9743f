"""Domains: IDNA names stored lowercase, and the standard aliases created with a new domain."""

import pytest
from django.core.exceptions import ValidationError

from gateway import services
from gateway.models import STANDARD_ALIASES, Alias, Domain
from tests.named import PASSWORD


def test_it_creates_the_standard_aliases_for_a_first_mailbox(db):
    domain = services.domain_create(
        name="Family.Example",
        mail_hostname="MAIL.family.example",
        first_mailbox="alice",
        first_mailbox_password=PASSWORD,
    )
    assert domain.name == "family.example"
    assert domain.mail_hostname == "mail.family.example"
    aliases = {a.local_part: a.destinations for a in Alias.objects.filter(domain=domain)}
    assert aliases == {name: ["alice@family.example"] for name in STANDARD_ALIASES}


def test_it_points_the_standard_aliases_at_a_chosen_mailbox(family):
    alice = family.mailboxes.get(local_part="alice")
    domain = services.domain_create(
        name="second.example", mail_hostname="mail.family.example", aliases_to=alice
    )
    postmaster = Alias.objects.get(domain=domain, local_part="postmaster")
    assert postmaster.destinations == ["alice@family.example"]


def test_it_skips_the_standard_alias_that_is_the_first_mailbox(db):
    domain = services.domain_create(
        name="solo.example",
        mail_hostname="mail.solo.example",
        first_mailbox="postmaster",
        first_mailbox_password=PASSWORD,
    )
    assert not Alias.objects.filter(domain=domain, local_part="postmaster").exists()
    assert Alias.objects.filter(domain=domain).count() == len(STANDARD_ALIASES) - 1


def test_it_stores_an_internationalized_name_in_ascii(db):
    domain = services.domain_create(
        name="Müller.Example",
        mail_hostname="mail.müller.example",
        first_mailbox="hans",
        first_mailbox_password=PASSWORD,
    )
    assert domain.name == "xn--mller-kva.example"
    assert domain.unicode_name == "müller.example"


def test_it_needs_a_target_for_the_standard_aliases(db):
    with pytest.raises(ValidationError, match="standard aliases"):
        services.domain_create(name="none.example", mail_hostname="mail.none.example")
    assert not Domain.objects.exists()


def test_it_saves_nothing_when_the_first_mailbox_is_invalid(db):
    with pytest.raises(ValidationError):
        services.domain_create(
            name="half.example",
            mail_hostname="mail.half.example",
            first_mailbox="alice",
            first_mailbox_password="short",
        )
    assert not Domain.objects.exists()


def test_it_sets_the_managers_of_a_new_domain(family, alice):
    domain = services.domain_create(
        name="second.example",
        mail_hostname="mail.family.example",
        aliases_to=family.mailboxes.get(local_part="alice"),
        managers=[alice],
    )
    assert list(domain.managers.all()) == [alice]


def test_the_api_creates_a_domain_with_its_managers(api, owner, family, alice):
    response = api(owner).post(
        "/api/domains/",
        {
            "name": "second.example",
            "mail_hostname": "mail.family.example",
            "managers": [alice.pk],
            "aliases_to": family.mailboxes.get(local_part="alice").pk,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert list(Domain.objects.get(name="second.example").managers.all()) == [alice]
