"""Mailu's config-import (a full replace) as Mailgate runs it in Mailu's admin container, with
the Mailgate document on stdin (``-n`` as the first argument: a dry run). Two things Mailu's own
command does not do, in the same transaction as the import:

- the application tokens are replaced: Mailu's import adds the document's tokens beside every
  token it imported before and deletes none, so a device password revoked in Mailgate would
  still log in; Mailgate's device passwords are the only tokens;
- what Mailgate does not model (KEPT, a token's networks and comment, the addresses of a forward
  that is off, which of NULL or '' an empty auto-reply text is) is merged in from what Mailu
  holds for the same domain, user, alias or token, instead of being reset to Mailu's defaults
  (docs/mailbox-features.md).
"""

import json
import sys
import tempfile

import click
import yaml
from mailu import create_app, models
from mailu.manage import config_import

KEPT = {
    "domain": (
        models.Domain,
        "name",
        ("comment", "max_users", "max_aliases", "max_quota_bytes", "signup_enabled"),
    ),
    "user": (
        models.User,
        "email",
        ("comment", "allow_spoofing", "change_pw_next_login", "global_admin", "spam_mark_as_read"),
    ),
    "alias": (models.Alias, "email", ("comment",)),
}


EMPTY_KEPT = ("reply_subject", "reply_body")


def ascii_name(name: str) -> str:
    """A domain or address with its domain in IDNA: Mailu keeps them so, Mailgate's document
    may give Unicode."""
    local, at, domain = name.rpartition("@")
    return f"{local}{at}{domain.encode('idna').decode()}".lower()


def merged(document: dict) -> dict:
    for section, (model, key, columns) in KEPT.items():
        held = {ascii_name(getattr(row, key)): row for row in model.query.all()}
        for entry in document.get(section, []):
            row = held.get(ascii_name(entry[key]))
            for column in columns if row is not None else ():
                entry.setdefault(column, getattr(row, column))
    users = {ascii_name(row.email): row for row in models.User.query.all()}
    for user in document.get("user", []):
        # Mailgate's empty auto-reply text is Mailu's either empty: NULL (never set) or ''.
        held = users.get(ascii_name(user["email"]))
        for column in EMPTY_KEPT if held is not None else ():
            if user.get(column) == "" and getattr(held, column) is None:
                user[column] = None
        # A forward that is off keeps the addresses Mailu holds for it (Mailgate has none).
        if held is not None and not held.forward_enabled and not user.get("forward_enabled"):
            user.setdefault("forward_destination", [])
            kept = sorted(held.forward_destination or [])
            user["forward_destination"] = user["forward_destination"] or kept
    # A token made in Mailu and adopted with its hash keeps its networks (``ip``), which
    # Mailgate does not model, and its own comment (Mailgate names one that has none).
    tokens = {(ascii_name(row.user_email), row.password): row for row in models.Token.query.all()}
    for user in document.get("user", []):
        for token in user.get("tokens", []):
            if held := tokens.get((ascii_name(user["email"]), token["password"])):
                token.update(comment=held.comment, ip=list(held.ip or []))
    return document


def imported(document: dict, *options: str) -> None:
    """Mailu's own command in this session: it commits, or (a dry run) rolls back; a refusal
    exits with Mailu's reason, nothing committed."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as source:
        json.dump(document, source)
        source.flush()
        try:
            config_import.main(args=[*options, "-q", source.name], standalone_mode=False)
        except click.ClickException as exc:
            sys.exit(f"Error: {exc.format_message()}")


def without_tokens(document: dict) -> dict:
    users = [{k: v for k, v in user.items() if k != "tokens"} for user in document["user"]]
    return {**document, "user": users}


app = create_app()
with app.app_context():
    document = merged(yaml.safe_load(sys.stdin))
    models.db.session.expunge_all()  # the rows read above are the import's to replace
    # First a dry run without the tokens: with a user refused, Mailu fails on its tokens
    # (NOT NULL token.user_email) instead of naming the fault.
    imported(without_tokens(document), "-n")
    models.db.session.query(models.Token).delete()
    imported(document, *sys.argv[1:])
