"""The checkout (``ROOT``), and the test data that lives beside the project, not in it: the
Compose specification's schema and Mailu's own source used as a test oracle (docs/facts.md says
what each is for).

One setting finds it: ``MAILGATE_SHARED_DIR`` (default ``../shared`` next to the checkout). A test
that needs a file from it calls :func:`shared_path`; when the file is missing the test is skipped
with the reason, except under ``CI=true``, where a missing oracle is a failure, not a skip.
"""

import os
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("MAILGATE_SHARED_DIR") or ROOT.parent / "shared")


def shared_path(*parts: str) -> Path:
    """The path of ``parts`` under the shared test data, or skip (fail under CI) when absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        unavailable(f"{path} is missing: set MAILGATE_SHARED_DIR to the folder beside the project")
    return path


def unavailable(reason: str) -> NoReturn:
    """Skip the test for want of what lives beside the project; under ``CI=true``, fail it."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
