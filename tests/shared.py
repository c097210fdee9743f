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

from lab import shared
from lab.shared import ROOT

__all__ = ["ROOT", "shared_path", "unavailable"]


def shared_path(*parts: str) -> Path:
    """The path of ``parts`` under the shared test data (found as the lab finds it), or skip
    (fail under CI) when absent."""
    try:
        return shared.shared_path(*parts)
    except shared.MissingShared as exc:
        unavailable(str(exc))


def unavailable(reason: str) -> NoReturn:
    """Skip the test for want of what lives beside the project; under ``CI=true``, fail it."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
