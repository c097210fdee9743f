"""Client set-up (docs/mailbox-features.md, Client set-up): Thunderbird's autoconfig and Outlook's
autodiscover for every served domain, an Apple configuration profile and a "set up a phone" page for
each mailbox."""

import plistlib
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from gateway.models import Domain

AUTODISCOVER_REQUEST = b"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>Carol@Family.example</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture
def any_host(settings):
    settings.ALLOWED_HOSTS = ["*"]


def servers(config: ET.Element) -> list[tuple[str, ...]]:
    fields = ("hostname", "port", "socketType")
    return [
        (server.tag, *(server.findtext(name) for name in fields))
        for server in config.iter()
        if server.tag in ("incomingServer", "outgoingServer")
    ]


def parsed(content: bytes) -> ET.Element:
    return ET.fromstring(content)  # noqa: S314 (Mailgate's own answer, not outside input)


@pytest.mark.parametrize(
    ("path", "host"),
    [
        ("/mail/config-v1.1.xml?emailaddress=carol%40family.example", "testserver"),
        ("/mail/config-v1.1.xml", "autoconfig.family.example"),
        ("/.well-known/autoconfig/mail/config-v1.1.xml", "autoconfig.family.example:443"),
    ],
)
def test_thunderbird_finds_the_servers_of_a_served_domain(client, family, any_host, path, host):
    response = client.get(path, HTTP_HOST=host)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml"
    config = parsed(response.content)
    assert config.find("emailProvider").get("id") == "family.example"
    assert servers(config) == [
        ("incomingServer", "mail.family.example", "993", "SSL"),
        ("outgoingServer", "mail.family.example", "465", "SSL"),
        ("outgoingServer", "mail.family.example", "587", "STARTTLS"),
    ]
    assert {e.text for e in config.iter("username")} == {"%EMAILADDRESS%"}


def test_it_answers_for_no_domain_it_does_not_serve(client, family, any_host):
    Domain.objects.filter(pk=family.pk).update(enabled=False)
    for query in ("carol@family.example", "x@elsewhere.example", "not a domain", "@"):
        response = client.get("/mail/config-v1.1.xml", {"emailaddress": query})
        assert response.status_code == 404, query


def test_outlook_finds_the_servers_and_the_login(client, family):
    response = client.post(
        "/autodiscover/autodiscover.xml", AUTODISCOVER_REQUEST, content_type="text/xml"
    )
    assert response.status_code == 200
    answer = parsed(response.content)
    protocols = {
        protocol.findtext(f"{OUTLOOK}Type"): protocol
        for protocol in answer.iter(f"{OUTLOOK}Protocol")
    }
    assert sorted(protocols) == ["IMAP", "SMTP"]
    imap = protocols["IMAP"]
    assert imap.findtext(f"{OUTLOOK}Server") == "mail.family.example"
    assert imap.findtext(f"{OUTLOOK}LoginName") == "carol@family.example"
    assert protocols["SMTP"].findtext(f"{OUTLOOK}Port") == "465"


@pytest.mark.parametrize(
    "body",
    [b"", b"<EMailAddress>not an address</EMailAddress>", b"<EMailAddress>\xff@x</EMailAddress>"],
)
def test_outlook_gets_a_clear_refusal_for_a_bad_request(client, family, body):
    response = client.post("/autodiscover/autodiscover.xml", body, content_type="text/xml")
    assert response.status_code == 400


def test_the_profile_sets_up_the_mailbox_without_a_password(client, carol, family):
    mailbox = family.mailboxes.get(local_part="carol")
    mailbox.display_name = "Carol <Example> & Co"
    mailbox.save()
    client.force_login(carol)
    response = client.get(reverse("gateway:mailbox-profile", args=[mailbox.pk]))
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    assert "carol.mobileconfig" in response["Content-Disposition"]
    profile = plistlib.loads(response.content)
    [mail] = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAddress"] == mail["IncomingMailServerUsername"] == "carol@family.example"
    assert mail["EmailAccountName"] == "Carol <Example> & Co"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        "mail.family.example",
        993,
    )
    assert mail["OutgoingMailServerPortNumber"] == 465 and mail["OutgoingMailServerUseSSL"]
    assert not any(
        "Password" in key and key != "OutgoingPasswordSameAsIncomingPassword" for key in mail
    )
    again = plistlib.loads(
        client.get(reverse("gateway:mailbox-profile", args=[mailbox.pk])).content
    )
    assert again["PayloadUUID"] == profile["PayloadUUID"]  # a new profile replaces the old


def test_the_phone_page_shows_the_servers_and_a_code(client, carol, bob, family):
    mailbox = family.mailboxes.get(local_part="carol")
    client.force_login(carol)
    page = client.get(reverse("gateway:mailbox-phone", args=[mailbox.pk])).content.decode()
    assert "<svg" in page and "mail.family.example" in page and "STARTTLS" in page
    assert reverse("gateway:mailbox-profile", args=[mailbox.pk]) in page
    client.force_login(bob)
    for name in ("gateway:mailbox-phone", "gateway:mailbox-profile"):
        assert client.get(reverse(name, args=[mailbox.pk])).status_code == 404
