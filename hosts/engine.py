"""The deploy engine: one deployment to one host, as one transaction.

``run(deployment)`` takes the host's lock (the database allows one running deployment per
host), renders the bundle (or replays an earlier deployment's, for a rollback), plans it against
the host in one round trip, and, when something changed, stages the new files on the host in a
second one, checks them there with the real tools, and starts the transaction of
``hosts.remote``, following its log until Mailgate confirms it. A plan without changes touches
nothing. A lost connection leaves the deployment running until ``recover`` learns from the host
how its transaction ended (it rolls back by itself without Mailgate's confirmation).
"""

import io
import tarfile
import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from gateway.bundle import Bundle, File, RenderError, Unit
from gateway.writers import shell_quote
from hosts import remote
from hosts.choices import DeploymentStatus, FileChange
from hosts.models import Deployment, DeploymentFile
from hosts.plan import Plan, make_plan
from hosts.render import render_host
from hosts.selectors import secret_values
from hosts.transport import Session, TransportError

LEASE = timedelta(minutes=2)  # a running deployment silent this long has lost its worker
POLL_SECONDS = 0.2
APPLY_TIMEOUT = 30 * 60


class Busy(Exception):
    """Another deployment to the same host is running; try again shortly."""


class Log:
    """Appends to a deployment's log as things happen (the UI shows it live), with every
    secret of the host masked, and keeps the worker's heartbeat fresh."""

    def __init__(self, deployment: Deployment, secrets: list[str]):
        self.deployment = deployment
        self.secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "********")
        if text and not text.endswith("\n"):
            text += "\n"
        Deployment.objects.filter(pk=self.deployment.pk).update(
            log=Concat(F("log"), Value(text)), heartbeat_at=timezone.now()
        )

    def beat(self) -> None:
        Deployment.objects.filter(pk=self.deployment.pk).update(heartbeat_at=timezone.now())


def run(deployment: Deployment, *, bundle: Bundle | None = None) -> DeploymentStatus:
    """Carry the deployment out; returns its status (RUNNING while it awaits recovery)."""
    _acquire(deployment)
    log = Log(deployment, secret_values(deployment.host))
    try:
        bundle = bundle or deployment_bundle(deployment)
    except RenderError as exc:
        return _finish(deployment, log, DeploymentStatus.FAILED, f"Cannot render: {exc}")
    try:
        session = Session(deployment.host)
    except TransportError as exc:  # a refused key too: nothing was sent to the host
        return _finish(deployment, log, DeploymentStatus.FAILED, f"{exc} Nothing was written.")
    try:
        with session:
            return _apply(deployment, bundle, session, log)
    except TransportError as exc:
        log(
            f"{exc}\nThe host finishes or undoes the change by itself: without Mailgate's "
            f"confirmation within {remote.COMMIT_WAIT} s it restores the previous files. "
            "Mailgate checks again once the host is reachable (needs recovery)."
        )
        return DeploymentStatus.RUNNING


def deployment_bundle(deployment: Deployment) -> Bundle:
    if deployment.rollback_of_id:
        return stored_bundle(deployment.rollback_of)
    return render_host(deployment.host)


def stored_bundle(deployment: Deployment) -> Bundle:
    """An earlier deployment's files and units, exactly as they were deployed."""
    rows = {row.path: row for row in deployment.files.exclude(change=FileChange.DELETED)}
    return Bundle(
        host=deployment.host.name,
        units=tuple(
            Unit(
                name=unit["name"],
                files=tuple(_stored_file(rows[path]) for path in unit["paths"]),
                checks=tuple(unit["checks"]),
                activate=tuple(unit["activate"]),
            )
            for unit in deployment.units
        ),
    )


def _stored_file(row: DeploymentFile) -> File:
    return File(row.path, row.get_content(), row.mode, row.owner, row.secret)


def _acquire(deployment: Deployment) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            started = deployment.transition(
                DeploymentStatus.RUNNING, started_at=now, heartbeat_at=now
            )
    except IntegrityError:
        stale = Deployment.objects.filter(
            host=deployment.host, status=DeploymentStatus.RUNNING, heartbeat_at__lt=now - LEASE
        ).first()
        if stale:
            recover(stale)
        raise Busy(f"{deployment.host} is being deployed to; this deployment waits.") from None
    if not started:
        raise Busy(f"{deployment} is {deployment.status}, not pending.")


def _apply(deployment: Deployment, bundle: Bundle, session: Session, log: Log):
    log(f"Connected to {deployment.host} ({deployment.host.ssh_address}).")
    plan = make_plan(deployment.host, bundle, session)
    _record(deployment, plan)
    for file in plan.drift:
        log(f"Drift: {file.path} on the host differs from the last deployment.")
    if not plan.changes:
        return _finish(deployment, log, DeploymentStatus.SUCCEEDED, "Nothing to change.")
    units = ", ".join(unit.name for unit in plan.affected_units)
    log(f"{len(plan.changes)} file(s) to change in {units}.")
    where = remote.folder(deployment.pk)
    staged = session.run(_stage_command(where, plan), stdin=_stage_archive(plan))
    if not staged.ok:
        return _finish(
            deployment, log, DeploymentStatus.FAILED, f"Staging failed:\n{staged.output}"
        )
    checked = session.run(f"STAGE={where}/files bash {where}/verify.sh")
    log(checked.output)
    if not checked.ok:
        session.run(f"rm -rf {where}")
        return _finish(
            deployment, log, DeploymentStatus.FAILED, "A check failed: nothing was activated."
        )
    log("Checks passed; starting the transaction on the host.")
    session.run(remote.start_command(deployment.pk))
    state = _follow(deployment, session, log)
    return _conclude(deployment, session, log, state)


def _conclude(deployment, session, log, state: str) -> DeploymentStatus:
    session.run(f"rm -rf {shell_quote(remote.folder(deployment.pk))}")
    if state == "committed":
        return _finish(deployment, log, DeploymentStatus.SUCCEEDED, "Deployed.")
    if state == "rolled-back":
        return _finish(
            deployment, log, DeploymentStatus.ROLLED_BACK, "Rolled back to the previous files."
        )
    return _finish(deployment, log, DeploymentStatus.FAILED, "The transaction failed.")


def _follow(deployment, session, log, *, offset: int = 0) -> str:
    """Stream the transaction's log; confirm it once it is applied; return its final state."""
    deadline = time.monotonic() + APPLY_TIMEOUT
    while time.monotonic() < deadline:
        state, _, text = session.run(remote.follow_command(deployment.pk, offset)).stdout.partition(
            "\n"
        )
        if text:
            log(text)
            offset += len(text.encode())
        else:
            log.beat()
        if state in remote.FINAL_STATES:
            return state
        if state == "applied":
            session.run(f"touch {shell_quote(remote.folder(deployment.pk))}/commit")
        time.sleep(POLL_SECONDS)
    raise TransportError(f"The transaction on {deployment.host} did not finish in time")


def recover(deployment: Deployment) -> DeploymentStatus:
    """Learn how a deployment whose connection was lost ended on the host."""
    log = Log(deployment, secret_values(deployment.host))
    try:
        with Session(deployment.host) as session:
            _, states = remote.parse_survey(session.run(remote.survey_command()).stdout)
            state = states.get(deployment.pk)
            if state in ("applying", "applied"):
                return DeploymentStatus.RUNNING
            if state is None or state == "staged":
                session.run(f"rm -rf {shell_quote(remote.folder(deployment.pk))}")
                return _finish(
                    deployment, log, DeploymentStatus.FAILED,
                    "Reconnected: the transaction never started, nothing was changed.",
                )  # fmt: skip
            log(f"Reconnected: the host's transaction ended {state}.")
            log(session.run(remote.follow_command(deployment.pk, 0)).stdout.partition("\n")[2])
            return _conclude(deployment, session, log, state)
    except TransportError as exc:
        log(f"Still cannot reach the host: {exc}")
        return DeploymentStatus.RUNNING


def _finish(deployment, log, status: DeploymentStatus, message: str) -> DeploymentStatus:
    log(message)
    deployment.transition(status, finished_at=timezone.now())
    return status


def _record(deployment: Deployment, plan: Plan) -> None:
    files = {file.path: file for file in plan.bundle.files}
    rows = []
    for item in plan.files:
        row = DeploymentFile(
            deployment=deployment,
            path=item.path,
            unit=item.unit,
            before_sha256=item.before_sha256,
            after_sha256=item.after_sha256,
            change=item.change,
            diff=item.diff,
        )
        if item.path in files:
            file = files[item.path]
            row.mode, row.owner = file.mode, file.owner
            row.set_content(file.content, secret=file.secret)
        rows.append(row)
    DeploymentFile.objects.filter(deployment=deployment).delete()
    DeploymentFile.objects.bulk_create(rows)
    deployment.units = [
        {
            "name": unit.name,
            "paths": [file.path for file in unit.files],
            "checks": list(unit.checks),
            "activate": list(unit.activate),
        }
        for unit in plan.bundle.units
    ]
    deployment.save(update_fields=["units"])


def _stage_archive(plan: Plan) -> bytes:
    """One tar with the changed files under files/, and the transaction's instructions."""
    files = {file.path: file for file in plan.bundle.files}
    changed = [files[f.path] for f in plan.changes if f.change != FileChange.DELETED]
    units = plan.affected_units
    uploaded = {file.path for file in changed}
    members = {
        "manifest": "".join(f"{f.path}\t{f.mode:o}\t{f.owner}\n" for f in changed).encode(),
        "delete": "".join(
            f"{f.path}\n" for f in plan.changes if f.change == FileChange.DELETED
        ).encode(),
        "keep": "".join(
            f"{file.path}\n" for unit in units for file in unit.files if file.path not in uploaded
        ).encode(),
        "activate.sh": remote.step_script(units, "activate").encode(),
        "verify.sh": remote.step_script(units, "checks").encode(),
        "transaction.sh": remote.TRANSACTION.encode(),
        **{f"files{file.path}": file.content for file in changed},
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o600
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _stage_command(where: str, plan: Plan) -> str:
    """Unpack the archive into the deployment's folder, and copy the unchanged files of the
    affected units beside the new ones, so each unit's checks see its whole configuration."""
    folder = shell_quote(where)
    return (
        f"umask 077 && rm -rf {folder} && mkdir -p {folder} && tar -x -C {folder} -f - && "
        f'while IFS= read -r path; do mkdir -p {folder}/files"$(dirname "$path")" && '
        f'cp -p "$path" {folder}/files"$path" || exit 1; done < {folder}/keep'
    )
