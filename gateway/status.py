"""The status page's probes: a registry that every app fills with its own checks, so the page,
its history and its API live here while the checks live beside what they check.

Why a registry: the status page reports on hosts (deployments, drift, WireGuard, TLS, ports,
open relay), on DNS (``zones``) and on OpenPGP keys (``keys``). ``gateway`` may import none of
those apps and ``hosts`` may not import ``zones`` or ``keys`` (docs/architecture.md), so no
single module can ask them all. As with the bundle contributors (``gateway/bundle.py``), each app
registers its own probes, in a module named ``probes`` (``hosts/probes.py``, ``zones/probes.py``,
``keys/probes.py``) that ``GatewayConfig.ready()`` imports by name for every installed app, the
way the admin finds ``admin`` modules, so ``gateway`` never names the apps it reports on.
``gateway.services.status_refresh`` runs every registered probe, stores one ``StatusItem`` per
finding and a ``StatusChange`` whenever an item's colour changes.

A probe is a function without arguments that returns findings. Each finding has a ``key`` that
stays the same from one run to the next (``"<probe>:<what>"``), which is how a colour change is
recognised; the ``domain_id`` of a finding about one domain, so that its managers see it (a
finding without a domain is infrastructure: the owner's alone); and the ``element`` of the
topology picture it colours (``"host:3"``, ``"port:3:25"``, ``"peer:7"``), if any.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import models

logger = logging.getLogger(__name__)


class Colour(models.TextChoices):
    GREEN = "green", "OK"
    AMBER = "amber", "Needs attention"
    RED = "red", "Broken"


SEVERITY = {Colour.GREEN: 0, Colour.AMBER: 1, Colour.RED: 2}


def worst(colours: Iterable[str]) -> str:
    """The most severe of ``colours`` (green when there are none)."""
    return max(colours, key=SEVERITY.__getitem__, default=Colour.GREEN)


@dataclass(frozen=True)
class Finding:
    """One status item as a probe sees it now."""

    key: str
    section: str  # the page groups items by it: "Hosts", "Tunnel", "TLS", "DNS", "Keys"
    label: str
    colour: str
    message: str
    fix: str = ""  # one sentence; empty when green
    domain_id: int | None = None
    element: str = ""


Probe = Callable[[], Iterable[Finding]]
_probes: dict[str, Probe] = {}


def probe(name: str) -> Callable[[Probe], Probe]:
    """Register the decorated function as the probe ``name``; its keys start ``name:``."""

    def register(function: Probe) -> Probe:
        _probes[name] = function
        return function

    return register


def run_probes(names: Iterable[str] | None = None) -> tuple[list[Finding], set[str]]:
    """Every registered probe's findings (of the probes ``names``, if given), and the names of
    the probes that ran to the end. A probe that fails is reported as one red finding; its
    earlier items are left as they were."""
    findings, completed = [], set()
    chosen = _probes if names is None else {name: _probes[name] for name in names}
    for name, function in chosen.items():
        try:
            found = list(function())
        except Exception as exc:  # one broken probe must not hide the others' results
            logger.exception("status probe %s failed", name)
            found = [_probe_failed(name, exc)]
        else:
            completed.add(name)
        findings += found
    return findings, completed


def _probe_failed(name: str, exc: Exception) -> Finding:
    return Finding(
        key=f"{name}:probe-failed",
        section="Mailgate",
        label=f"The {name} checks",
        colour=Colour.RED,
        message=f"The {name} checks failed: {exc}",
        fix="Read the worker's log for the traceback and report it; the other checks still ran.",
    )
