"""Schemathesis against Mailgate's own OpenAPI schema: generated requests to every operation,
as the owner, through a live server on loopback, find no server error and no response that
breaks the schema. The operations that reach another machine (SSH to a host, a DNS push, a WKD
lookup) are left out, by name: here they would send traffic to the world's addresses; the
deployment, push and key tests cover them against peers of their own."""

import os

import pytest
import schemathesis
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gateway.models import ApiToken
from tests.world import build_infrastructure


@pytest.fixture
def api_schema(live_server, transactional_db):
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw)
    schema.config.update(base_url=live_server.url)
    return schema


# The operations that reach another machine while answering (or queue work that does): generated
# data would point them at the world's addresses. The deployment, DNS push, key and certificate
# tests run them against their own peers.
REACH_ANOTHER_MACHINE = {
    ("GET", "/api/hosts/{id}/plan/"),  # SSH to the host
    ("GET", "/api/hosts/{id}/host-key/"),  # SSH to the host
    ("POST", "/api/hosts/{id}/deploy/"),  # SSH to the host
    ("POST", "/api/hosts/{id}/adopt/"),  # SSH to the host (tests/test_hosts_adopt_postfix.py)
    ("GET", "/api/dns-zones/{id}/plan/"),  # reads the zone from its push target
    ("POST", "/api/dns-zones/{id}/push/"),  # DNS UPDATE to the push target
    ("POST", "/api/contact-keys/"),  # with an address: a WKD lookup at the address's domain
    ("POST", "/api/trust-anchors/fetch-protonca/"),  # WKD lookup at proton.me
    ("POST", "/api/certificates/{id}/renew/"),  # queues an order at the ACME server
    ("POST", "/api/certificates/renew-due/"),  # queues orders at the ACME server
}


def reaches_another_machine(ctx) -> bool:
    return (ctx.operation.method.upper(), ctx.operation.path) in REACH_ANOTHER_MACHINE


schema = schemathesis.pytest.from_fixture("api_schema").exclude(reaches_another_machine)


@pytest.fixture
def owner_token(django_user_model, family, other):
    build_infrastructure()
    owner = django_user_model.objects.get_or_create(
        username="owner", defaults={"is_superuser": True, "is_staff": True}
    )[0]
    return ApiToken.issue(user=owner, name="schemathesis")[1]


@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_schema(case, owner_token):
    # The API's bar: no server error, and every response as the schema documents it. (DRF
    # lists tolerate a malformed ?offset= by ignoring it; that leniency is not checked.)
    case.call_and_validate(
        headers={"Authorization": f"Token {owner_token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )


def test_the_schema_documents_every_error_with_one_component():
    raw = SchemaGenerator().get_schema(request=None, public=True)
    domains = raw["paths"]["/api/domains/"]
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    assert domains["post"]["responses"]["400"]["content"] == error
    assert raw["paths"]["/api/relays/{id}/"]["delete"]["responses"]["409"]["content"] == error


def test_only_the_operations_that_reach_another_machine_are_left_out():
    raw = SchemaGenerator().get_schema(request=None, public=True)
    kept = {
        f"{result.ok().method.upper()} {result.ok().path}"
        for result in schemathesis.openapi.from_dict(raw)
        .exclude(reaches_another_machine)
        .get_all_operations()
    }
    assert "GET /api/domains/" in kept and "POST /api/hosts/{id}/host-key/" in kept
    every = {f"{method.upper()} {path}" for path, ops in raw["paths"].items() for method in ops}
    assert every - kept == {" ".join(operation) for operation in REACH_ANOTHER_MACHINE}


def test_the_schema_is_valid_openapi_without_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)
