"""The gateway's bundle carries the WKD ``hu/`` tree: exactly the exported key bytes under GnuPG's
file name, only for published keys of enabled mailboxes and domains, in one query, and served by
the rendered nginx over both WKD methods."""

import subprocess
import tempfile
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gateway import services as directory
from hosts.models import Host
from hosts.render import render_host
from hosts.render.context import load_context
from keys import services, wkd
from keys.models import OpenPGPKey
from tests.keys_world import user_ids_of, world_fixture  # noqa: F401 (fixture)
from tests.named import PASSWORD
from tests.servers import for_the_test, free_port, get, serving
from tests.world import build_infrastructure

ALICE_HASH = wkd.local_hash("alice")
HAPROXY_ROOT = "/var/lib/mailgate/wkd/.well-known/openpgpkey"
TRAEFIK_ROOT = "/opt/traefik/wkd/public/.well-known/openpgpkey"


@pytest.fixture
def infrastructure(family, other):
    return build_infrastructure()


@pytest.fixture
def alice_key(world, family):
    mailbox = family.mailboxes.get(local_part="alice")
    fingerprint = world.make_key("Alice <alice@family.example>", "Alice <alice@work.example>")
    return services.openpgp_key_upload(mailbox=mailbox, key_data=world.export(fingerprint))


def traefik_gateway() -> None:
    Host.objects.filter(name="vps").update(
        gateway_proxy="traefik-haproxy", acme_email="owner@family.example"
    )


def hu_files(bundle) -> dict[str, bytes]:
    return {file.path: file.content for file in bundle.files if "/hu/" in file.path}


def test_it_puts_the_exported_key_in_the_gateways_bundle(infrastructure, alice_key):
    bundle = render_host(infrastructure["vps"])
    path = f"{HAPROXY_ROOT}/family.example/hu/{ALICE_HASH}"
    assert hu_files(bundle) == {path: bytes(alice_key.wkd_key)}
    assert bundle.file(path).mode == 0o644
    assert user_ids_of(bundle.file(path).content) == ["Alice <alice@family.example>"]
    assert f"{HAPROXY_ROOT}/family.example/policy" in {file.path for file in bundle.files}
    assert bundle.unit("wkd-keys").checks == ()


def test_it_gives_no_key_to_a_host_that_is_not_a_gateway(infrastructure, alice_key):
    assert hu_files(render_host(infrastructure["home"])) == {}


def test_it_uses_the_traefik_gateways_wkd_root(infrastructure, alice_key):
    traefik_gateway()
    bundle = render_host(Host.objects.get(name="vps"))
    assert list(hu_files(bundle)) == [f"{TRAEFIK_ROOT}/family.example/hu/{ALICE_HASH}"]


@pytest.mark.parametrize(
    "withdraw",
    [
        lambda key: OpenPGPKey.objects.filter(pk=key.pk).update(published=False),
        lambda key: OpenPGPKey.objects.filter(pk=key.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        ),
        lambda key: type(key.mailbox).objects.filter(pk=key.mailbox_id).update(enabled=False),
        lambda key: (
            type(key.mailbox.domain).objects.filter(pk=key.mailbox.domain_id).update(enabled=False)
        ),
    ],
    ids=["unpublished", "expired", "mailbox-disabled", "domain-disabled"],
)
def test_it_publishes_only_what_should_be_found(infrastructure, alice_key, withdraw):
    withdraw(alice_key)
    assert hu_files(render_host(infrastructure["vps"])) == {}


def test_it_concatenates_a_mailboxs_keys_newest_first(infrastructure, alice_key, world):
    newer = world.make_key("alice@family.example")
    second = services.openpgp_key_upload(mailbox=alice_key.mailbox, key_data=world.export(newer))
    [content] = hu_files(render_host(infrastructure["vps"])).values()
    assert content == bytes(second.wkd_key) + bytes(alice_key.wkd_key)


def test_it_reads_every_key_in_one_query(infrastructure, world, family, other):
    vps = infrastructure["vps"]
    ctx = load_context(vps)
    with CaptureQueriesContext(connection) as one_key:
        wkd.wkd_units(ctx)
    for n in range(3):
        mailbox = directory.mailbox_create(domain=other, local_part=f"user{n}", password=PASSWORD)
        fingerprint = world.make_key(f"user{n}@other.example")
        services.openpgp_key_upload(mailbox=mailbox, key_data=world.export(fingerprint))
    ctx = load_context(vps)
    with CaptureQueriesContext(connection) as more:
        [unit] = wkd.wkd_units(ctx)
    assert len(more) == len(one_key) == 1
    assert len(unit.files) == 3


def test_it_serves_the_published_key_by_both_wkd_methods(infrastructure, alice_key, tmp_path):
    """The rendered nginx (Traefik flavour: plain HTTP) on the rendered tree, as gpg asks."""
    traefik_gateway()
    bundle = render_host(Host.objects.get(name="vps"))
    staged = tmp_path / "stage"
    bundle.write_to(staged)
    root = staged / TRAEFIK_ROOT.lstrip("/").removesuffix("/.well-known/openpgpkey")
    conf = (staged / "opt/traefik/wkd/nginx.conf").read_bytes()
    port = free_port()
    server = for_the_test(conf, root, port, "listen 127.0.0.1:8080", "/usr/share/nginx/html")
    advanced, direct = wkd.urls("alice@family.example")
    local = f"http://127.0.0.1:{port}"
    with serving(tmp_path, server, port):
        with get(advanced.replace("https://openpgpkey.family.example", local),
                 host="openpgpkey.family.example") as response:  # fmt: skip
            fetched = response.read()
        with get(direct.replace("https://family.example", local), host="family.example") as r:
            assert r.read() == fetched
    assert fetched == bytes(alice_key.wkd_key)
    # What gpg does with a WKD answer: import it keeping the address's user ID.
    with tempfile.TemporaryDirectory(prefix="mg-wkd-") as home:
        gpg = ["gpg", "--homedir", home, "--batch", "--with-colons"]
        keep = ["--import-filter", "keep-uid=mbox = alice@family.example"]
        subprocess.run([*gpg, *keep, "--import"], input=fetched, check=True, capture_output=True)
        listing = subprocess.run([*gpg, "-k"], check=True, capture_output=True).stdout.decode()
    assert f"fpr:::::::::{alice_key.fingerprint}:" in listing
