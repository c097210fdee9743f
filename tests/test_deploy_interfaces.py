"""Deploying through the API, the browser pages and ``manage.py deploy``, against a lab host."""

import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Deployment, Host, Relay
from tests.deploy_world import relay_host


@pytest.fixture
def lab(labs):
    return labs()


@pytest.fixture
def host(db, lab):
    return relay_host("relay", lab)


def succeeded(host) -> Deployment:
    now = timezone.now()
    return Deployment.objects.create(
        host=host,
        trigger=DeploymentTrigger.CLI,
        status=DeploymentStatus.SUCCEEDED,
        started_at=now,
        finished_at=now,
    )


def move_the_smarthost() -> None:
    """A change in Mailgate between a plan and its deployment: the smarthost's port."""
    relay = Relay.objects.get()
    relay.port = 2525
    relay.save()


def test_the_api_fetches_and_pins_the_host_key(api, owner, host, lab):
    Host.objects.filter(pk=host.pk).update(ssh_host_key="")
    client = api(owner)
    url = f"/api/hosts/{host.pk}/host-key/"
    fetched = client.get(url).json()
    assert fetched["key"] == lab.host_key and fetched["fingerprint"].startswith("SHA256:")
    assert (
        client.post(url, {**fetched, "fingerprint": "SHA256:x"}, format="json").status_code == 400
    )
    assert client.post(url, fetched, format="json").status_code == 204
    host.refresh_from_db()
    assert host.ssh_host_key == lab.host_key


def test_the_api_plans_with_diffs(api, owner, host):
    plan = api(owner).get(f"/api/hosts/{host.pk}/plan/").json()
    changes = {change["path"]: change for change in plan["changes"]}
    # The lab host starts with Debian's main.cf: the plan shows what replaces it.
    assert changes["/etc/postfix/main.cf"]["change"] == "changed"
    assert changes["/etc/postfix/mailgate/sasl_passwd"]["change"] == "created"
    assert "+relayhost = [smtp.provider.example]:587" in changes["/etc/postfix/main.cf"]["diff"]
    assert "secret file changed" in changes["/etc/postfix/mailgate/sasl_passwd"]["diff"]
    assert "relay-secret" not in str(plan)


def test_the_api_queues_deployments_and_follows_their_log(api, owner, host):
    client = api(owner)
    queued = client.post(f"/api/hosts/{host.pk}/deploy/")
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    assert client.post("/api/hosts/deploy-all/").status_code == 202
    deployment = Deployment.objects.get(pk=queued.json()["id"])
    Deployment.objects.filter(pk=deployment.pk).update(log="Connected.\nDeployed.\n")
    first = client.get(f"/api/deployments/{deployment.pk}/log/").json()
    assert first["log"] == "Connected.\nDeployed.\n"
    rest = client.get(f"/api/deployments/{deployment.pk}/log/?offset={first['offset']}").json()
    assert rest["log"] == "" and rest["offset"] == first["offset"]
    assert len(client.get("/api/deployments/").json()["results"]) == 2


def test_the_api_rolls_back_only_to_a_successful_deployment(api, owner, host):
    client = api(owner)
    good = succeeded(host)
    rollback = client.post(f"/api/deployments/{good.pk}/rollback/")
    assert rollback.status_code == 202 and rollback.json()["rollback_of"] == good.pk
    failed = Deployment.objects.create(host=host, trigger=DeploymentTrigger.CLI, status="failed")
    assert client.post(f"/api/deployments/{failed.pk}/rollback/").status_code == 400


def test_the_api_keeps_deploying_to_the_owner(api, alice, host):
    client = api(alice)
    assert client.get(f"/api/hosts/{host.pk}/plan/").status_code == 403
    assert client.post(f"/api/hosts/{host.pk}/deploy/").status_code == 403
    assert client.post("/api/hosts/deploy-all/").status_code == 403
    assert client.get("/api/deployments/").json()["results"] == []


def test_the_api_says_when_a_host_is_unreachable(api, owner, host, lab):
    lab.stop_sshd()
    response = api(owner).get(f"/api/hosts/{host.pk}/plan/")
    assert response.status_code == 502 and "Cannot connect" in response.json()["detail"]


def test_the_pages_confirm_the_key_plan_and_deploy(client, owner, host, lab):
    Host.objects.filter(pk=host.pk).update(ssh_host_key="")
    client.force_login(owner)
    page = client.get(reverse("hosts:host-key", args=[host.pk])).content.decode()
    fingerprint = lab.run(f"ssh-keygen -lf {lab.root / 'host_key.pub'}").stdout.split()[1]
    assert fingerprint in page
    response = client.post(
        reverse("hosts:host-key", args=[host.pk]), {"key": lab.host_key, "fingerprint": fingerprint}
    )
    assert response.status_code == 302
    plan = client.get(reverse("hosts:host-plan", args=[host.pk])).content.decode()
    assert "/etc/postfix/main.cf" in plan and 'class="add"' in plan and "Deploy relay" in plan
    deployed = client.post(reverse("hosts:host-deploy", args=[host.pk]))
    deployment = Deployment.objects.get()
    assert deployed.url == reverse("hosts:deployment-detail", args=[deployment.pk])


@pytest.mark.parametrize("status", DeploymentStatus)
def test_a_deployment_is_in_progress_until_it_ends(status):
    assert Deployment(status=status).in_progress is (status in {"pending", "running"})


def test_the_log_fragment_polls_only_while_the_deployment_runs(client, owner, host):
    client.force_login(owner)
    deployment = Deployment.objects.create(host=host, trigger="ui", status="running")
    fragment = client.get(reverse("hosts:deployment-log", args=[deployment.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in fragment
    done = succeeded(host)
    fragment = client.get(reverse("hosts:deployment-log", args=[done.pk])).content.decode()
    assert "hx-trigger" not in fragment
    detail = client.get(reverse("hosts:deployment-detail", args=[done.pk])).content.decode()
    assert "Roll back to these files" in detail
    listing = client.get(reverse("hosts:deployment-list")).content.decode()
    assert f"#{done.pk}" in listing or f">{done.pk}<" in listing


def test_the_pages_are_the_owners(client, alice, host):
    client.force_login(alice)
    for name in ("hosts:host-key", "hosts:host-plan", "hosts:deployment-list"):
        args = [host.pk] if name.startswith("hosts:host") else []
        assert client.get(reverse(name, args=args)).status_code == 302  # to the login


def test_the_command_plans_and_deploys(host, lab, capsys):
    call_command("deploy", host="relay", plan=True)
    assert "changed  /etc/postfix/main.cf" in capsys.readouterr().out
    call_command("deploy", host="relay")
    output = capsys.readouterr().out
    assert "+ committed" in output and "Deployed." in output
    assert b"relayhost" in lab.read("/etc/postfix/main.cf")
    call_command("deploy", host="relay")
    assert "Nothing to change." in capsys.readouterr().out
    with pytest.raises(CommandError, match="No host is named"):
        call_command("deploy", host="nowhere")


def test_it_deploys_through_the_api_only_the_plan_that_was_shown(api, owner, host):
    client = api(owner)
    shown = client.get(f"/api/hosts/{host.pk}/plan/").json()
    move_the_smarthost()
    refused = client.post(f"/api/hosts/{host.pk}/deploy/", {"digest": shown["digest"]})
    assert refused.status_code == 409
    assert "changed since it was shown" in refused.json()["detail"]
    now = refused.json()["plan"]
    main_cf = next(c for c in now["changes"] if c["path"] == "/etc/postfix/main.cf")
    assert "+relayhost = [smtp.provider.example]:2525" in main_cf["diff"]
    assert now["digest"] != shown["digest"] and not Deployment.objects.exists()
    queued = client.post(f"/api/hosts/{host.pk}/deploy/", {"digest": now["digest"]})
    assert queued.status_code == 202
    assert Deployment.objects.get().plan_digest == now["digest"]


def test_the_plan_page_deploys_its_plan_or_shows_the_new_one(client, owner, host):
    client.force_login(owner)
    page = client.get(reverse("hosts:host-plan", args=[host.pk])).content.decode()
    shown = re.search(r'name="digest" value="(\w+)"', page)[1]
    move_the_smarthost()
    refused = client.post(reverse("hosts:host-deploy", args=[host.pk]), {"digest": shown})
    assert refused.status_code == 409 and not Deployment.objects.exists()
    page = refused.content.decode()
    assert "changed since it was shown" in page and "[smtp.provider.example]:2525" in page
    now = re.search(r'name="digest" value="(\w+)"', page)[1]
    deployed = client.post(reverse("hosts:host-deploy", args=[host.pk]), {"digest": now})
    deployment = Deployment.objects.get()
    assert deployed.url == reverse("hosts:deployment-detail", args=[deployment.pk])
    assert deployment.plan_digest == now != shown
