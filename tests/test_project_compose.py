"""docker-compose.yml has the production shape and passes the Compose specification's schema."""

import json

import jsonschema
import pytest
import yaml

from tests.shared import ROOT, shared_path


def compose_schema() -> dict:
    return json.loads(shared_path("schemas", "compose-spec.schema.json").read_text())


def test_it_validates_against_the_compose_schema():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(compose, compose_schema())


def test_it_runs_postgres_redis_web_worker_and_beat():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert set(services) == {"db", "redis", "web", "worker", "beat"}
    assert "gunicorn" in services["web"]["command"]
    assert services["worker"]["environment"]["CELERY_BROKER_URL"].startswith("redis://")


def test_it_has_a_broken_compose_file_fail_the_schema():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose["services"]["web"]["ports"] = "8000"  # must be a list
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(compose, compose_schema())
