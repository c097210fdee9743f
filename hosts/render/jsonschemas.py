"""Validation of rendered YAML against the published JSON schemas vendored in ``schemas/``
(Traefik v3 from SchemaStore, the Compose specification; sources in ``schemas/SOURCES.md``)."""

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft7Validator, Draft202012Validator

SCHEMAS = Path(__file__).parent / "schemas"
# compose-go's schema is draft 2020-12; SchemaStore's Traefik schemas are draft-07.
DRAFTS = {"compose-spec": Draft202012Validator}


def problems(schema: str, document, where: str = "") -> list[str]:
    """Every way ``document`` breaks ``schemas/<schema>.schema.json``, one line each."""
    errors = _validator(schema).iter_errors(document)
    return sorted(
        f"{where or schema}: {_at(error.absolute_path)}: {error.message}" for error in errors
    )


@cache
def _validator(schema: str):
    data = json.loads((SCHEMAS / f"{schema}.schema.json").read_text())
    return DRAFTS.get(schema, Draft7Validator)(data)


def _at(path) -> str:
    return "/".join(str(part) for part in path) or "(top)"
