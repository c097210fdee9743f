"""The expected records of the split setup, from a snapshot and without a database: MX and the
mail host at the gateway, SPF naming where mail leaves, the PTR as the HELO name, the client
setup records for the ports the gateway forwards, and what changes with a relay or the settings."""

import pytest

from gateway.models import Domain
from hosts.models import Host
from hosts.render.context import SERVED_PORTS, load_context
from tests.world import build_infrastructure
from zones.models import DkimKey, ZoneSettings
from zones.records import DomainFacts, Facts, expected_records, zone_of, zone_records
from zones.selectors import dns_facts

FAMILY = DomainFacts("family.example", "mail.family.example", ZoneSettings())


def facts(*domains: DomainFacts, **changes) -> Facts:
    values = {
        "domains": domains or (FAMILY,),
        "gateway_ipv4": "198.51.100.1",
        "gateway_ipv6": "2001:db8::1",
        "helo_name": "mail.family.example",
        **changes,
    }
    return Facts(**values)


def records(snapshot: Facts, domain: str = "family.example") -> dict[tuple[str, str], tuple]:
    return {(r.name, r.rtype): r.values for r in expected_records(snapshot, domain)}


def test_it_points_mail_at_the_gateway_and_names_it_in_spf():
    found = records(facts())
    assert found[("family.example", "MX")] == ("10 mail.family.example.",)
    assert found[("mail.family.example", "A")] == ("198.51.100.1",)
    assert found[("mail.family.example", "AAAA")] == ("2001:db8::1",)
    assert found[("family.example", "TXT")] == ("v=spf1 ip4:198.51.100.1 ~all",)
    assert found[("openpgpkey.family.example", "A")] == ("198.51.100.1",)
    assert found[("mta-sts.family.example", "AAAA")] == ("2001:db8::1",)


def test_it_expects_the_helo_name_as_the_ptr_of_every_gateway_address():
    found = records(facts())
    assert found[("1.100.51.198.in-addr.arpa", "PTR")] == ("mail.family.example.",)
    v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    assert found[(v6, "PTR")] == ("mail.family.example.",)
    ptr = next(r for r in expected_records(facts(), "family.example") if r.rtype == "PTR")
    assert ptr.reverse and zone_of(facts(), ptr.name) is None


def test_it_names_a_relay_host_in_spf_but_guesses_nothing_for_an_address():
    assert records(facts(relay_host="smtp.provider.example"))[("family.example", "TXT")] == (
        "v=spf1 ip4:198.51.100.1 a:smtp.provider.example ~all",
    )
    extra = DomainFacts(
        "family.example",
        "mail.family.example",
        ZoneSettings(spf_extra="include:_spf.protonmail.ch"),
    )
    assert records(facts(extra))[("family.example", "TXT")] == (
        "v=spf1 ip4:198.51.100.1 include:_spf.protonmail.ch ~all",
    )


def test_it_publishes_client_setup_only_for_forwarded_ports():
    found = records(facts())
    assert found[("_submissions._tcp.family.example", "SRV")] == ("10 1 465 mail.family.example.",)
    assert found[("_imaps._tcp.family.example", "SRV")] == ("10 1 993 mail.family.example.",)
    assert found[("_imap._tcp.family.example", "SRV")] == ("0 0 0 .",)  # 143 is not forwarded
    assert found[("autoconfig.family.example", "CNAME")] == ("mail.family.example.",)


def test_it_advertises_only_what_a_postfix_dovecot_server_serves():
    """Postfix + Dovecot serve no POP3, Sieve or autodiscover: their SRV records say so
    (RFC 6186 "0 0 0 ."), the rest point at the mail host."""
    found = records(facts(offered_ports=frozenset(SERVED_PORTS["postfix-dovecot"])))
    for service in ("_pop3s", "_sieve", "_autodiscover"):
        assert found[(f"{service}._tcp.family.example", "SRV")] == ("0 0 0 .",), service
    assert found[("_submission._tcp.family.example", "SRV")] == ("20 1 587 mail.family.example.",)
    assert found[("_imaps._tcp.family.example", "SRV")] == ("10 1 993 mail.family.example.",)
    mailu = records(facts(offered_ports=frozenset(SERVED_PORTS["mailu"])))
    assert mailu[("_pop3s._tcp.family.example", "SRV")] == ("10 1 995 mail.family.example.",)
    assert mailu[("_sieve._tcp.family.example", "SRV")] == ("10 1 4190 mail.family.example.",)


def test_it_authorizes_reports_sent_to_another_domain():
    settings = ZoneSettings(dmarc_rua="dmarc@reports.example", dmarc_ruf="ruf@family.example")
    found = records(facts(DomainFacts("family.example", "mail.family.example", settings)))
    assert found[("_dmarc.family.example", "TXT")] == (
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@reports.example; "
        "ruf=mailto:ruf@family.example; adkim=s; aspf=s",
    )
    assert found[("family.example._report._dmarc.reports.example", "TXT")] == ("v=DMARC1;",)
    assert found[("_smtp._tls.family.example", "TXT")] == (
        "v=TLSRPTv1; rua=mailto:dmarc@reports.example",
    )


def test_a_retired_dkim_key_is_expected_gone_and_the_others_published():
    keys = (
        DkimKey(selector="old", public_key="T0xE", retired_at="2026-11-01T00:00Z"),
        DkimKey(selector="new", public_key="TkVX", active=True),
    )
    found = records(
        facts(DomainFacts("family.example", "mail.family.example", ZoneSettings(), keys))
    )
    assert found[("old._domainkey.family.example", "TXT")] == ()
    assert found[("new._domainkey.family.example", "TXT")] == ("v=DKIM1; k=rsa; p=TkVX",)


def test_a_shared_mail_host_gets_one_record_in_the_zone_that_holds_it():
    third = DomainFacts("third.example", "mail.family.example", ZoneSettings(ttl=600))
    snapshot = facts(FAMILY, third)
    family_zone = {(r.name, r.rtype): r for r in zone_records(snapshot, "family.example")}
    assert family_zone[("mail.family.example", "A")].ttl == 600  # the shorter TTL wins
    assert ("mail.family.example", "A") not in {
        (r.name, r.rtype) for r in zone_records(snapshot, "third.example")
    }
    assert zone_of(snapshot, "a.b.family.example") == "family.example"


def test_without_a_gateway_there_is_nothing_to_point_at():
    found = records(facts(gateway_ipv4="", gateway_ipv6="", helo_name=""))
    assert ("mail.family.example", "A") not in found
    assert found[("family.example", "TXT")] == ("v=spf1 ~all",)
    assert not [key for key in found if key[1] == "PTR"]


@pytest.mark.parametrize("char", ["\n", "\r", "\x1b"], ids=repr)
def test_it_refuses_a_control_character_in_any_value(char):
    poisoned = DomainFacts("family.example", f"mail.family.example{char}x", ZoneSettings())
    with pytest.raises(ValueError, match="control character"):
        expected_records(facts(poisoned), "family.example")


@pytest.mark.django_db
def test_the_deployed_backend_decides_what_is_advertised(family):
    world = build_infrastructure()
    assert dns_facts().offered_ports == frozenset(SERVED_PORTS["postfix-dovecot"])
    world["home"].mail_backend = "mailu"
    world["home"].save()
    assert 995 in dns_facts().offered_ports and 4190 in dns_facts().offered_ports


@pytest.mark.django_db
def test_the_helo_name_is_the_name_the_mail_server_is_rendered_with(family, other):
    world = build_infrastructure()
    Domain.objects.filter(pk=family.pk).update(enabled=False)
    assert dns_facts().helo_name == load_context(world["home"]).hostname == "mail.other.example"
    Host.objects.filter(pk=world["home"].pk).update(fqdn="mx.family.example")
    world["home"].refresh_from_db()
    assert dns_facts().helo_name == load_context(world["home"]).hostname == "mx.family.example"
