"""The shell scripts Mailgate deploys: a top that sets each value, quoted, then bodies read from
``scripts/``. The bodies are plain files, so shellcheck reads them as they are
(tests/test_render_scripts.py), and they take every value from the variables set at the top."""

from collections.abc import Iterable
from pathlib import Path

from gateway.writers import lines, shell_quote

SCRIPTS = Path(__file__).with_name("scripts")


def script(
    summary: str,
    usage: str,
    variables: Iterable[tuple[str, object]],
    bodies: Iterable[str],
    arrays: Iterable[tuple[str, Iterable[object]]] = (),
) -> bytes:
    """A bash script: ``bodies`` are file names in ``scripts/``, each after a blank line."""
    top = [
        f"# {summary}",
        f"# Usage: {usage}",
        "set -Eeuo pipefail",
        "",
        *(f"{name}={shell_quote(value)}" for name, value in variables),
        *(f"{name}=({' '.join(shell_quote(v) for v in values)})" for name, values in arrays),
    ]
    text = "".join("\n" + (SCRIPTS / body).read_text() for body in bodies)
    return b"#!/usr/bin/env bash\n" + lines(top) + text.encode()


def checks(path: str) -> tuple[str, ...]:
    """A rendered shell script is checked by bash's parser and, where installed, shellcheck."""
    quoted = shell_quote(path)
    return (
        f'bash -n "$STAGE"{quoted}',
        f'if command -v shellcheck >/dev/null 2>&1; then shellcheck "$STAGE"{quoted}; fi',
    )
