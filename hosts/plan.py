"""What a deployment would change: the host's rendered bundle compared with the last successful
deployment and with what is on the host now (hashes gathered in one remote command), with a
unified diff per file (secret files masked) and the drift the host has taken on by hand. Its
digest names it, so that a deployment applies the plan that was shown and no other."""

import difflib
import hashlib
from dataclasses import dataclass, field

from gateway.bundle import Bundle, File, Unit
from hosts import holdings, remote
from hosts.choices import DeploymentStatus, FileChange
from hosts.models import Deployment, DeploymentFile, Host
from hosts.transport import Session

MAX_DIFF_LINES = 2000


@dataclass(frozen=True)
class FilePlan:
    path: str
    unit: str
    change: FileChange
    before_sha256: str  # on the host now; "" when absent
    after_sha256: str  # what Mailgate renders; "" when the file goes away
    drift: bool  # the host's copy differs from what Mailgate last deployed
    secret: bool
    diff: str


class PlanChanged(Exception):
    """The plan is no longer the one that was shown; ``plan`` is the one there is now."""

    def __init__(self, plan: "Plan"):
        self.plan = plan
        paths = ", ".join(file.path for file in plan.changes) or "none"
        super().__init__(
            f"The plan for {plan.host} changed since it was shown (the directory, the settings "
            f"or the host's files): it now changes {len(plan.changes)} file(s): {paths}. "
            "Review the new plan and deploy it."
        )


class RemovalsUnconfirmed(Exception):
    """The plan takes away what the host holds, and that was not confirmed."""

    def __init__(self, plan: "Plan"):
        self.plan = plan
        super().__init__(
            f"The plan for {plan.host} takes away what the host holds: "
            f"{', '.join(plan.destructive)}. Confirm these removals to deploy it."
        )


@dataclass(frozen=True)
class Plan:
    host: Host
    bundle: Bundle
    files: tuple[FilePlan, ...]
    remote_states: dict[int, str] = field(default_factory=dict)
    # What the host holds that this plan takes away (``hosts.holdings``): it needs a person's
    # confirmation.
    destructive: tuple[str, ...] = ()

    @property
    def changes(self) -> list[FilePlan]:
        return [file for file in self.files if file.change != FileChange.UNCHANGED]

    @property
    def drift(self) -> list[FilePlan]:
        return [file for file in self.files if file.drift]

    @property
    def affected_units(self) -> list[Unit]:
        names = {file.unit for file in self.changes}
        return [unit for unit in self.bundle.units if unit.name in names]

    @property
    def digest(self) -> str:
        """Names this exact plan: every file's change, from what to what."""
        text = repr([(f.path, f.change, f.before_sha256, f.after_sha256) for f in self.files])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def lines(self) -> list[str]:
        """The plan as text (``manage.py deploy --plan``, ``manage.py adopt``): drift, each
        change with its diff, what it takes away, and the count."""
        text = [
            f"drift    {file.path} (changed on the host since the last deployment)"
            for file in self.drift
        ]
        for file in self.changes:
            text += [f"{file.change:8} {file.path}", file.diff]
        text += [f"removes  {item}" for item in self.destructive]
        unchanged = len(self.files) - len(self.changes)
        return [*text, f"{len(self.changes)} to change, {unchanged} unchanged."]

    def confirm(self, digest: str) -> None:
        """Raise PlanChanged unless ``digest`` names this plan (no digest: nothing was shown)."""
        if digest and digest != self.digest:
            raise PlanChanged(self)


def last_deployed(host: Host) -> dict[str, DeploymentFile]:
    """The files of the host's last successful deployment, by path."""
    last = (
        Deployment.objects.filter(host=host, status=DeploymentStatus.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .first()
    )
    if last is None:
        return {}
    return {row.path: row for row in last.files.exclude(change=FileChange.DELETED)}


def make_plan(host: Host, bundle: Bundle, session: Session) -> Plan:
    paths = survey_paths(host, bundle)
    result = session.run(remote.survey_command(), stdin="\0".join(paths).encode())
    return plan_from_survey(host, bundle, result.stdout, session)


def survey_paths(host: Host, bundle: Bundle) -> list[str]:
    """The paths whose state on the host the plan needs: the bundle's, and those of the last
    deployment (a file Mailgate no longer renders is removed)."""
    return sorted({file.path for file in bundle.files} | set(last_deployed(host)))


def plan_from_survey(host: Host, bundle: Bundle, survey: str, session: Session) -> Plan:
    """The plan, from the host's answer to ``remote.survey_command`` for ``survey_paths``."""
    previous = last_deployed(host)
    on_host, remote_states = remote.parse_survey(survey)
    units = {file.path: unit.name for unit in bundle.units for file in unit.files}
    before: dict[str, bytes] = {}  # the host's copy of each file that changes and is read
    planned = []
    for file in bundle.files:
        state = on_host.get(file.path, "")
        if state != file.sha256 and (not file.secret or holdings.reader(file.path)):
            before[file.path] = _old_content(file.path, state, previous.get(file.path), session)
        if not state and file.path in holdings.LIVE:
            before[file.path] = holdings.live(file.path, session)
        planned.append(_file_plan(file, units[file.path], state, previous.get(file.path), before))
    for path, row in sorted(previous.items()):
        if path not in units:
            state = on_host.get(path, "")
            if holdings.reader(path):
                before[path] = _old_content(path, state, row, session)
            planned.append(_removal(row, state))
    after = {file.path: file.content for file in bundle.files}
    return Plan(
        host=host,
        bundle=bundle,
        files=tuple(planned),
        remote_states=remote_states,
        destructive=tuple(holdings.removals(before, after)),
    )


def _file_plan(file: File, unit: str, on_host: str, previous, before) -> FilePlan:
    drift = bool(previous) and on_host != previous.after_sha256
    if on_host == file.sha256:
        change, diff = FileChange.UNCHANGED, ""
    else:
        change = FileChange.CHANGED if on_host else FileChange.CREATED
        diff = _diff(file.path, before.get(file.path), file.content, secret=file.secret)
    return FilePlan(file.path, unit, change, on_host, file.sha256, drift, file.secret, diff)


def _removal(previous: DeploymentFile, on_host: str) -> FilePlan:
    change = FileChange.DELETED if on_host else FileChange.UNCHANGED
    drift = on_host != previous.after_sha256
    diff = "" if not on_host else f"--- {previous.path}\n+++ /dev/null\n(the file is removed)\n"
    return FilePlan(previous.path, previous.unit, change, on_host, "", drift, previous.secret, diff)


def _old_content(path: str, on_host: str, previous, session) -> bytes:
    """The host's current bytes: from history when the host still has what was deployed,
    else fetched (only drifted files cost a read); empty when it has none."""
    if not on_host:
        return b""
    if previous is not None and previous.after_sha256 == on_host:
        return previous.get_content()
    return session.get(path)


def _diff(path: str, old: bytes | None, new: bytes, *, secret: bool) -> str:
    if secret:
        return f"--- {path}\n+++ {path}\n(secret file changed: contents not shown)\n"
    try:
        before, after = (old or b"").decode(), new.decode()
    except UnicodeDecodeError:
        return f"--- {path}\n+++ {path}\n(binary file changed)\n"
    lines = list(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=path if old else "/dev/null",
            tofile=path,
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES} more lines\n"]
    return "".join(lines)
