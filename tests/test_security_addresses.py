"""A value that would change a map line's meaning (a ``#`` local part, a space in a destination, an
unnormalized domain) is refused or stored in its one form, in the model layer that the forms and the
API share; the map writers refuse such a key as well."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from gateway import services, writers
from gateway.bundle import RenderError
from gateway.models import Alias, Domain, Mailbox
from hosts.models import Host, Relay
from tests.named import PASSWORD
from tests.world import build_infrastructure
from zones.models import ZoneSettings


@pytest.mark.parametrize("local_part", ["#alice", "al ice", "a:b", "a,b", "a%b", "a!b", "a$b"])
def test_it_refuses_a_local_part_a_map_or_passwd_file_reads_otherwise(
    api, owner, family, local_part
):
    response = api(owner).post(
        "/api/mailboxes/",
        {"domain": family.pk, "local_part": local_part, "password": PASSWORD},
        format="json",
    )
    assert response.status_code == 400
    assert "not a valid local part" in str(response.json()["errors"]["local_part"])
    alias = api(owner).post(
        "/api/aliases/",
        {"domain": family.pk, "local_part": local_part, "destinations": ["alice@family.example"]},
        format="json",
    )
    assert alias.status_code == 400
    assert not Mailbox.objects.filter(local_part=local_part).exists()
    assert not Alias.objects.filter(local_part=local_part).exists()


def test_it_refuses_a_destination_postfix_would_read_as_two(api, owner, family):
    response = api(owner).post(
        "/api/aliases/",
        {"domain": family.pk, "local_part": "team", "destinations": ["alice@ b.example"]},
        format="json",
    )
    assert response.status_code == 400
    assert "not a valid domain name" in str(response.json()["errors"]["destinations"])
    assert not Alias.objects.filter(local_part="team").exists()


def test_it_refuses_the_same_in_the_form(client, owner, family):
    client.force_login(owner)
    response = client.post(
        reverse("gateway:alias-create"),
        {"domain": family.pk, "local_part": "#team", "destinations": "alice@family.example"},
    )
    assert response.status_code == 200
    assert "not a valid local part" in response.content.decode()
    assert not Alias.objects.filter(local_part="#team").exists()


def test_it_stores_fullwidth_upper_case_and_trailing_dot_names_in_one_form(api, owner, family):
    fullwidth = "\uff26\uff41\uff4d.example."  # "Fam.example." in fullwidth letters
    response = api(owner).post(
        "/api/domains/",
        {
            "name": fullwidth,
            "mail_hostname": "MAIL.Fam.Example.",
            "first_mailbox": "Joe",
            "first_mailbox_password": PASSWORD,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    domain = Domain.objects.get(pk=response.json()["id"])
    assert (domain.name, domain.mail_hostname) == ("fam.example", "mail.fam.example")
    assert domain.mailboxes.get().address == "joe@fam.example"
    alias = api(owner).post(
        "/api/aliases/",
        {"domain": family.pk, "local_part": "Team", "destinations": [f"Joe@{fullwidth}"]},
        format="json",
    )
    assert alias.status_code == 201, alias.json()
    assert alias.json()["destinations"] == ["joe@fam.example"]
    assert Alias.objects.get(pk=alias.json()["id"]).local_part == "team"


def test_it_refuses_a_name_with_two_trailing_dots(api, owner):
    response = api(owner).post(
        "/api/domains/",
        {
            "name": "fam.example..",
            "mail_hostname": "mail.fam.example",
            "first_mailbox": "joe",
            "first_mailbox_password": PASSWORD,
        },
        format="json",
    )
    assert response.status_code == 400
    assert not Domain.objects.filter(name__startswith="fam.example").exists()


def test_every_other_field_holding_an_address_or_name_stores_it_in_one_form(family):
    world = build_infrastructure()
    relay = world["relay"]
    relay.host, relay.rewrite_sender_to = "SMTP.Provider.Example.", "Family@\uff30rovider.example"
    relay.full_clean()
    host = world["vps"]
    host.fqdn, host.acme_email, host.ssh_address = "MAIL.Family.Example.", "Me@X.Example", "VPS.X."
    host.full_clean()
    settings = ZoneSettings(domain=family, dmarc_rua="DMARC@Family.Example", nameservers=["NS1.X."])
    settings.full_clean()
    assert (relay.host, relay.rewrite_sender_to) == (
        "smtp.provider.example",
        "family@provider.example",
    )
    assert (host.fqdn, host.acme_email, host.ssh_address) == (
        "mail.family.example",
        "me@x.example",
        "vps.x",
    )
    assert (settings.dmarc_rua, settings.nameservers) == ("dmarc@family.example", ["ns1.x"])


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (Relay, "rewrite_sender_to", "#x@family.example"),
        (Relay, "rewrite_sender_to", "a$1@family.example"),
        (Host, "acme_email", "me@ x.example"),
        (Host, "fqdn", "mail family.example"),
    ],
)
def test_it_refuses_such_values_in_every_field_holding_an_address(family, model, field, value):
    row = model.objects.first() or (build_infrastructure() and model.objects.first())
    setattr(row, field, value)
    with pytest.raises(ValidationError) as refused:
        row.full_clean()
    assert field in refused.value.message_dict


def test_a_row_saved_before_the_checks_never_turns_its_map_line_into_a_comment(family):
    Mailbox.objects.filter(local_part="carol").update(local_part="#carol")
    box = Mailbox.objects.get(local_part="#carol")
    with pytest.raises(RenderError, match="starts with #"):
        writers.table([(box.address, "OK")])


def test_the_first_mailbox_of_a_new_domain_is_checked_the_same_way(db):
    with pytest.raises(ValidationError):
        services.domain_create(
            name="new.example",
            mail_hostname="mail.new.example",
            first_mailbox="#joe",
            first_mailbox_password=PASSWORD,
        )
    assert not Domain.objects.filter(name="new.example").exists()
