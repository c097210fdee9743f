"""The shell script bodies Mailgate deploys (``hosts/render/scripts/``) pass shellcheck as the
files they are, and a non-editable install carries them."""

import subprocess
import tomllib
from pathlib import Path

import pytest

from hosts.render import shell
from tests.shared import ROOT

BODIES = sorted(shell.SCRIPTS.glob("*.sh"))


def test_it_finds_the_bodies():
    names = {body.name for body in BODIES}
    assert {"egress-common.sh", "egress-home.sh", "egress-gateway.sh", "filter-guard.sh"} <= names


@pytest.mark.parametrize("body", BODIES, ids=lambda body: body.name)
def test_it_passes_shellcheck(body):
    # A body has no shebang of its own: the rendered script's top (shell.script) is bash.
    result = subprocess.run(
        ["shellcheck", "--shell=bash", str(body)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_packages_the_bodies():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["hosts"]
    root = Path(shell.__file__).parent.parent
    assert set(BODIES) <= {path for pattern in patterns for path in root.glob(pattern)}
