"""The destructive-change guard (docs/adoption.md, "The destructive-change guard"): a plan that
takes away a domain, mailbox or alias the host holds, or a setting it has, is marked, and goes out
only once a person has confirmed it: on the page (a checkbox), in the API (``confirm_destructive``),
on the command line, and for an automatic deployment, which waits until the owner approves and
confirms it. Against a real sshd and Postfix (a lab relay host) and what Mailgate renders for it."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from hosts import holdings, services
from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Deployment, Host
from hosts.render import dovecot, mailu, postfix
from tests.deploy_world import lab_with_relay_files, relay_host

USERS = dovecot.USERS
MAILBOXES = f"{postfix.MAPS_DIR}/virtual_mailboxes"
ALIASES = f"{postfix.MAPS_DIR}/virtual_aliases"
REWRITE = "setting main.cf sender_canonical_maps"


def test_a_mailbox_named_in_several_files_is_one_removal():
    before = {
        USERS: b"alice@family.example:{BLF-CRYPT}x::::::\nbob@family.example:{BLF-CRYPT}y::::::\n",
        MAILBOXES: b"alice@family.example OK\nbob@family.example OK\n",
    }
    after = {
        USERS: b"alice@family.example:{BLF-CRYPT}x::::::\n",
        MAILBOXES: b"alice@family.example OK\n",
    }
    assert holdings.removals(before, after) == ["mailbox bob@family.example"]


def test_an_alias_that_becomes_a_mailbox_has_not_gone():
    before = {ALIASES: b"team@family.example alice@family.example\n", MAILBOXES: b""}
    after = {ALIASES: b"", MAILBOXES: b"team@family.example OK\n"}
    assert holdings.removals(before, after) == []


def test_a_removed_file_takes_what_it_held():
    document = {
        "domain": [{"name": "family.example"}],
        "user": [],
        "alias": [{"email": "%@family.example", "destination": ["a@b.c"], "wildcard": True}],
    }
    before = {mailu.IMPORT_PATH: json.dumps(document).encode()}
    assert holdings.removals(before, {}) == ["alias @family.example", "domain family.example"]


def test_a_setting_left_out_is_reset_but_a_new_value_is_not():
    before = {postfix.MAIN_CF: b"relayhost = [smtp.example]:587\nreadme_directory = no\n"}
    assert holdings.removals(before, {postfix.MAIN_CF: b"relayhost = [other]:25\n"}) == []
    assert holdings.removals(before, {postfix.MAIN_CF: b"relayhost =\n"}) == [
        "setting main.cf relayhost"
    ]


def test_a_mailbox_that_would_lose_its_password_is_a_removal():
    before = {dovecot.USERS: b"alice@family.example:{BLF-CRYPT}$2y$05$abc::::::\n"}
    assert holdings.removals(before, {dovecot.USERS: b"alice@family.example:*::::::\n"}) == [
        "setting password of alice@family.example"
    ]
    changed = {dovecot.USERS: b"alice@family.example:{BLF-CRYPT}$2y$05$new::::::\n"}
    assert holdings.removals(before, changed) == []  # a new password takes nothing away


def test_srs_going_with_the_last_forward_takes_nothing_away():
    before = {postfix.MAIN_CF: b"sender_canonical_maps = tcp:127.0.0.1:10001\n"}
    assert holdings.removals(before, {postfix.MAIN_CF: b"relayhost =\n"}) == []
    # A canonical map of the owner's own is a choice: leaving it out resets it.
    before = {postfix.MAIN_CF: b"sender_canonical_maps = hash:/etc/postfix/canonical\n"}
    assert holdings.removals(before, {postfix.MAIN_CF: b"relayhost =\n"}) == [
        "setting main.cf sender_canonical_maps"
    ]


def test_a_peer_with_new_keys_keeps_its_place_but_a_peer_removed_is_gone():
    def hub(*peers: tuple[str, str]) -> bytes:
        body = ["[Interface]", "Address = 10.8.0.1/24", "PrivateKey = a="]
        for key, ips in peers:
            body += ["[Peer]", f"PublicKey = {key}", f"AllowedIPs = {ips}"]
        return "\n".join(body).encode()

    path = "/etc/wireguard/wg0.conf"
    before = {path: hub(("k1=", "10.8.0.2/32"), ("k2=", "10.8.0.3/32"))}
    assert (
        holdings.removals(before, {path: hub(("n1=", "10.8.0.2/32"), ("n2=", "10.8.0.3/32"))}) == []
    )
    gone = holdings.removals(before, {path: hub(("k1=", "10.8.0.2/32"))})
    assert gone == [
        "setting wg0.conf Peer 10.8.0.3/32.AllowedIPs",
        "setting wg0.conf Peer 10.8.0.3/32.PublicKey",
    ]


def test_a_file_that_cannot_be_read_is_a_removal_of_what_it_held():
    before = {mailu.ENV_PATH: b"no equals sign here\n"}
    assert holdings.removals(before, {mailu.ENV_PATH: b"A=b\n"}) == [
        f"setting {mailu.ENV_PATH} (unreadable: what it holds is unknown)"
    ]


# --- on a real host -----------------------------------------------------------------------------


@pytest.fixture
def lab():
    host = lab_with_relay_files()
    yield host
    host.close()


@pytest.fixture
def relay(db, lab):
    host = relay_host("relay", lab)
    host.relay.rewrite_sender_to = "family@provider.example"
    host.relay.save()
    first = services.deployment_run_here(host=host, trigger=DeploymentTrigger.CLI)
    assert first.status == DeploymentStatus.SUCCEEDED, first.log
    assert first.destructive == []
    host.relay.rewrite_sender_to = ""
    host.relay.save()
    return host, lab


def test_the_plan_names_what_it_takes_away(relay):
    host, _ = relay
    assert services.host_plan(host=host).destructive == (REWRITE,)


def test_an_automatic_deployment_waits_for_a_person_to_confirm_its_removals(relay, owner):
    host, lab = relay
    deployment = services.deployment_run_here(host=host, trigger=DeploymentTrigger.AUTO)
    assert deployment.status == DeploymentStatus.AWAITING
    assert deployment.destructive == [REWRITE]
    assert "waits for a person to confirm" in deployment.log
    assert b"sender_canonical_maps" in lab.read(postfix.MAIN_CF)
    with pytest.raises(ValidationError, match="Confirm these removals"):
        services.deployment_approve(
            deployment=deployment, plan_digest=deployment.plan_digest, user=owner
        )
    services.deployment_approve(
        deployment=deployment,
        plan_digest=deployment.plan_digest,
        user=owner,
        confirm_destructive=True,
    )
    assert services.deployment_run(deployment=deployment) == DeploymentStatus.SUCCEEDED
    deployment.refresh_from_db()
    assert deployment.destructive_confirmed_by == owner and deployment.approved_by == owner
    assert b"sender_canonical_maps" not in lab.read(postfix.MAIN_CF)


def test_the_owner_too_must_confirm_and_the_api_says_who_did(relay, owner, api):
    host, lab = relay
    client = api(owner)
    url = reverse("api:host-deploy", args=[host.pk])
    plan = client.get(reverse("api:host-plan", args=[host.pk])).json()
    assert plan["destructive"] == [REWRITE]
    refused = client.post(url, {"digest": plan["digest"]}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "destructive_unconfirmed"
    blind = client.post(url, {"confirm_destructive": True}, format="json")
    assert blind.status_code == 400, blind.content  # confirms only a plan one has seen
    assert not Deployment.objects.filter(trigger=DeploymentTrigger.API).exists()

    confirmed = client.post(
        url, {"digest": plan["digest"], "confirm_destructive": True}, format="json"
    )
    assert confirmed.status_code == 202, confirmed.content
    assert confirmed.json()["destructive_confirmed_by"] == "owner"
    deployment = Deployment.objects.get(pk=confirmed.json()["id"])
    assert services.deployment_run(deployment=deployment) == DeploymentStatus.SUCCEEDED
    assert b"sender_canonical_maps" not in lab.read(postfix.MAIN_CF)
    shown = client.get(reverse("api:deployment-detail", args=[deployment.pk])).json()
    assert shown["destructive"] == [REWRITE] and shown["destructive_confirmed_by"] == "owner"


def test_a_deployment_without_the_digest_is_held_for_confirmation(relay, owner):
    host, _ = relay
    deployment = services.host_deploy(
        host=host, plan_digest="", trigger=DeploymentTrigger.UI, user=owner
    )
    assert services.deployment_run(deployment=deployment) == DeploymentStatus.AWAITING


def test_the_page_asks_for_the_checkbox(relay, owner, client):
    host, _ = relay
    client.force_login(owner)
    page = client.get(reverse("hosts:host-plan", args=[host.pk]))
    assert REWRITE in page.content.decode() and b'name="confirm_destructive"' in page.content
    digest = services.host_plan(host=host).digest
    url = reverse("hosts:host-deploy", args=[host.pk])
    refused = client.post(url, {"digest": digest})
    assert refused.status_code == 409 and b"Confirm these removals" in refused.content
    accepted = client.post(url, {"digest": digest, "confirm_destructive": "on"})
    assert accepted.status_code == 302
    assert Deployment.objects.get(trigger=DeploymentTrigger.UI).destructive_confirmed_by == owner


def test_the_command_line_names_the_confirming_owner(relay, owner, capsys):
    host, _ = relay
    with pytest.raises(CommandError, match="awaiting"):
        call_command("deploy", host=host.name)
    with pytest.raises(CommandError, match="not an owner"):
        call_command("deploy", host=host.name, confirm_destructive="nobody")
    call_command("deploy", host=host.name, confirm_destructive="owner")
    assert f"removes  {REWRITE}" in capsys.readouterr().out
    latest = Deployment.objects.filter(status=DeploymentStatus.SUCCEEDED).latest("pk")
    assert latest.destructive == [REWRITE] and latest.destructive_confirmed_by == owner


def test_convergence_holds_a_destructive_plan_on_an_automatic_host(relay, owner, client):
    host, lab = relay
    Host.objects.filter(pk=host.pk).update(infrastructure_changed_at=None)  # only the removal
    host.refresh_from_db()
    assert host.apply_changes == "automatically"
    deployment = services.host_converge(host=host)
    assert services.deployment_run(deployment=deployment) == DeploymentStatus.AWAITING
    assert services.host_converge(host=host) is None  # the waiting plan has these files

    client.force_login(owner)
    page = client.get(reverse("hosts:deployment-detail", args=[deployment.pk]))
    assert REWRITE in page.content.decode() and b'name="confirm_destructive"' in page.content
    url = reverse("hosts:deployment-approve", args=[deployment.pk])
    client.post(url, {"digest": deployment.plan_digest})  # without the checkbox: refused
    assert Deployment.objects.get(pk=deployment.pk).status == DeploymentStatus.AWAITING
    client.post(url, {"digest": deployment.plan_digest, "confirm_destructive": "on"})
    deployment.refresh_from_db()  # as the worker loads it
    assert deployment.destructive_confirmed_by == owner
    assert services.deployment_run(deployment=deployment) == DeploymentStatus.SUCCEEDED
    assert b"sender_canonical_maps" not in lab.read(postfix.MAIN_CF)
