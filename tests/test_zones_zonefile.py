"""Zone files of several domains (one sharing another's mail host, an internationalized one,
DKIM keys, TLSA, a report address in another domain) pass BIND's ``named-checkzone``; long TXT
values are split into strings of at most 255 bytes."""

import subprocess

import dns.rdatatype
import dns.zone
import pytest

from gateway import services as gateway_services
from gateway.bundle import RenderError
from tests.helpers import self_signed
from tests.named import PASSWORD
from tests.world import build_infrastructure
from zones import services
from zones.models import ZoneSettings
from zones.tlsa import spki_sha256


@pytest.fixture
def domains(family, other):
    build_infrastructure()
    third = gateway_services.domain_create(
        name="third.example",
        mail_hostname="mail.family.example",  # shares family's mail host (and its A record)
        first_mailbox="dave",
        first_mailbox_password=PASSWORD,
    )
    books = gateway_services.domain_create(
        name="bücher.example",
        mail_hostname="mail.bücher.example",
        first_mailbox="eva",
        first_mailbox_password=PASSWORD,
    )
    for domain in (family, other, books):
        services.dkim_key_generate(domain=domain)
    settings = ZoneSettings(
        domain=family,
        nameservers=["ns1.provider.example", "ns2.provider.example"],
        dmarc_rua="reports@other.example",
        tlsa_enabled=True,
        tlsa_certificate=self_signed("mail.family.example")[0],
        spf_extra="include:_spf.protonmail.ch",
    )
    settings.full_clean()
    settings.save()
    return {"family": family, "other": other, "third": third, "books": books}


def named_checkzone(zone: str, content: bytes, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / f"{zone}.zone"
    path.write_bytes(content)
    return subprocess.run(
        ["named-checkzone", zone, str(path)], capture_output=True, text=True, timeout=60
    )


def test_every_zone_file_passes_named_checkzone(domains, tmp_path):
    for domain in domains.values():
        content = services.zone_file_for(domain=domain)
        result = named_checkzone(domain.name, content, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.rstrip().endswith("OK")
        assert content.startswith(b"; Written by Mailgate: the records it manages in ")


def test_it_fails_named_checkzone_when_the_file_is_broken(domains, tmp_path):
    content = services.zone_file_for(domain=domains["family"])
    broken = content.replace(b"IN MX 10 mail.family.example.", b"IN MX ten mail.family.example.")
    result = named_checkzone("family.example", broken, tmp_path)
    assert result.returncode != 0


def test_it_splits_long_txt_values_into_255_byte_strings(domains):
    zone = dns.zone.from_text(
        services.zone_file_for(domain=domains["family"]).decode(),
        "family.example.",
        check_origin=True,
    )
    (dkim,) = zone.find_rdataset("dkim._domainkey", dns.rdatatype.TXT)
    assert len(dkim.strings) == 2
    assert all(len(part) <= 255 for part in dkim.strings)
    assert b"".join(dkim.strings).startswith(b"v=DKIM1; k=rsa; p=MIIBIjAN")


def test_it_puts_each_record_in_the_zone_it_belongs_to(domains):
    family = services.zone_file_for(domain=domains["family"]).decode()
    other = services.zone_file_for(domain=domains["other"]).decode()
    third = services.zone_file_for(domain=domains["third"]).decode()

    assert "mail.family.example. 3600 IN A 198.51.100.1" in family
    assert family.count("mail.family.example. 3600 IN A ") == 1  # one A for both domains
    assert "mail.family.example. 3600 IN A" not in third
    assert "third.example. 3600 IN MX 10 mail.family.example." in third
    digest = spki_sha256(domains["family"].zone_settings.tlsa_certificate)
    assert f"_25._tcp.mail.family.example. 3600 IN TLSA 3 1 1 {digest}" in family
    assert '"v=spf1 ip4:198.51.100.1 include:_spf.protonmail.ch ~all"' in family
    # family's reports go to other.example, which says it accepts them (RFC 7489 §7.1)
    assert 'family.example._report._dmarc.other.example. 3600 IN TXT "v=DMARC1;"' in other
    assert "family.example. 3600 IN NS ns1.provider.example." in family
    assert "; No name servers are set: mail.other.example. stands in" in other


def test_it_writes_internationalized_names_in_their_ascii_form(domains):
    content = services.zone_file_for(domain=domains["books"]).decode()
    assert "$ORIGIN xn--bcher-kva.example." in content
    assert "xn--bcher-kva.example. 3600 IN MX 10 mail.xn--bcher-kva.example." in content


def test_it_refuses_a_control_character_from_the_database(domains):
    ZoneSettings.objects.filter(domain=domains["family"]).update(spf_extra="a:x\nevil IN A 1.2.3.4")
    with pytest.raises(RenderError, match="control character"):
        services.zone_file_for(domain=domains["family"])
