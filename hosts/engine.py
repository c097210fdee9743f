"""The deploy engine: one deployment to one host, as one transaction.

``run(deployment)`` takes the host's lock (the database allows one running deployment per
host), renders the bundle (or replays an earlier deployment's, for a rollback), and holds one
conversation with the host (``remote.APPLY``, a single command on one SSH channel): the host
reports the state of every file the plan needs; when something changed, Mailgate sends the new
files, the host stages and checks them with the real tools and starts the transaction of
``hosts.remote``, streaming its log, and Mailgate confirms it once it is applied. A plan without
changes touches nothing. A lost connection, or any other failure once the host may hold the new
files, leaves the deployment running until ``recover`` learns from the host how its transaction
ended (it rolls back by itself without Mailgate's confirmation). While it runs, a thread beats
every ``MAILGATE_DEPLOY_HEARTBEAT`` seconds; a deployment silent for ``MAILGATE_DEPLOY_LEASE``
seconds has lost its worker, and ``recover_stale`` (Celery beat) concludes it.
"""

import io
import tarfile
import threading
import traceback
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Concat
from django.utils import timezone

from gateway.bundle import Bundle, File, RenderError, Unit
from gateway.writers import shell_quote
from hosts import remote
from hosts.choices import DeploymentStatus, FileChange
from hosts.models import Deployment, DeploymentFile
from hosts.plan import Plan, PlanChanged, plan_from_survey, survey_paths
from hosts.render import render_host
from hosts.selectors import secret_values
from hosts.transport import Session, TransportError

# How long one deployment may take on the host: a first activation may pull container images.
APPLY_TIMEOUT = 30 * 60


class Busy(Exception):
    """Another deployment to the same host is running; try again shortly."""


class Log:
    """Appends to a deployment's log as things happen (the UI shows it live), with every
    secret of the host masked."""

    def __init__(self, deployment: Deployment, secrets: list[str]):
        self.deployment = deployment
        self.secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "********")
        if text and not text.endswith("\n"):
            text += "\n"
        Deployment.objects.filter(pk=self.deployment.pk).update(log=Concat(F("log"), Value(text)))


def stale_deployments() -> QuerySet[Deployment]:
    """The running deployments whose worker has been silent for longer than the lease: it died,
    or lost the host."""
    lease = timedelta(seconds=settings.MAILGATE_DEPLOY_LEASE)
    return Deployment.objects.filter(
        status=DeploymentStatus.RUNNING, heartbeat_at__lt=timezone.now() - lease
    )


@contextmanager
def _heartbeat(deployment: Deployment):
    """Keep the deployment's heartbeat fresh from a thread, so that a long step (a slow check
    on the host) is not taken for a dead worker."""
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(settings.MAILGATE_DEPLOY_HEARTBEAT):
                running = Deployment.objects.filter(
                    pk=deployment.pk, status=DeploymentStatus.RUNNING
                )
                try:
                    running.update(heartbeat_at=timezone.now())
                except DatabaseError:
                    continue  # a busy database misses one beat, not the lease
        finally:
            connection.close()  # the thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{deployment.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run(deployment: Deployment, *, bundle: Bundle | None = None) -> DeploymentStatus:
    """Carry the deployment out; returns its status (RUNNING while it awaits recovery). A
    deployment that is no longer pending (a task delivered again) is left as it is."""
    if not _acquire(deployment):
        return deployment.status
    log = Log(deployment, secret_values(deployment.host))
    with _heartbeat(deployment):
        try:
            return _run(deployment, bundle, log)
        except Exception:  # a bug or a database error must not leave the host locked
            log(f"Mailgate failed:\n{traceback.format_exc()}")
            return recover(deployment)


def _run(deployment: Deployment, bundle: Bundle | None, log: Log) -> DeploymentStatus:
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
    rows = deployment.files.exclude(change=FileChange.DELETED)
    files = {row.path: _stored_file(row) for row in rows}
    return Bundle(
        host=deployment.host.name,
        units=tuple(Unit.from_record(record, files) for record in deployment.units),
    )


def _stored_file(row: DeploymentFile) -> File:
    return File(row.path, row.get_content(), row.mode, row.owner, row.secret)


def _acquire(deployment: Deployment) -> bool:
    """Take the host's lock; False when the deployment is no longer pending."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return deployment.transition(DeploymentStatus.RUNNING, started_at=now, heartbeat_at=now)
    except IntegrityError:
        recover_stale(host=deployment.host)
        raise Busy(f"{deployment.host} is being deployed to; this deployment waits.") from None


def _apply(deployment: Deployment, bundle: Bundle, session: Session, log: Log):
    log(f"Connected to {deployment.host} ({deployment.host.ssh_address}).")
    with session.stream(remote.apply_command(deployment.pk), timeout=APPLY_TIMEOUT) as stream:
        host = _Conversation(deployment, stream, log)
        survey = host.survey(survey_paths(deployment.host, bundle))
        plan = plan_from_survey(deployment.host, bundle, survey, session)
        _record(deployment, plan)
        try:
            plan.confirm(deployment.plan_digest)
        except PlanChanged as exc:
            return _finish(deployment, log, DeploymentStatus.FAILED, f"{exc} Nothing was written.")
        for file in plan.drift:
            log(f"Drift: {file.path} on the host differs from the last deployment.")
        if not plan.changes:
            return _finish(deployment, log, DeploymentStatus.SUCCEEDED, "Nothing to change.")
        if deployment.unconfirmed_removals:
            return _hold(
                deployment, plan, log, f"{_removals(plan)}: it waits for a person to confirm."
            )
        if deployment.must_wait():
            return _hold(
                deployment,
                plan,
                log,
                f"{len(plan.changes)} file(s) to change: the plan waits for the owner's approval.",
            )
        units = ", ".join(unit.name for unit in plan.affected_units)
        log(f"{len(plan.changes)} file(s) to change in {units}.")
        state = host.apply(_stage_archive(plan))
    if state == "stage-failed":
        return _finish(
            deployment, log, DeploymentStatus.FAILED, "Staging failed: nothing was written."
        )
    if state == "check-failed":
        return _finish(
            deployment, log, DeploymentStatus.FAILED, "A check failed: nothing was activated."
        )
    return _outcome(deployment, log, state)


class _Conversation:
    """Mailgate's side of ``remote.APPLY`` on one open channel: what it sends, and the host's
    output split at the marker lines that end each step."""

    def __init__(self, deployment: Deployment, stream, log: Log):
        self.deployment, self.stream, self.log = deployment, stream, log
        self.pending = ""

    def survey(self, paths: list[str]) -> str:
        """The host's answer to ``remote.survey_command`` for ``paths``."""
        self.stream.send(remote.framed("\0".join(paths).encode()))
        answer = ""
        for text, state in self._events(live=False):
            answer += text
            if state == "surveyed":
                return answer
        raise AssertionError("unreachable: _events raises when the channel ends")

    def apply(self, archive: bytes) -> str:
        """Stage, check and carry out the transaction; log its output line by line as it
        comes (at least every ``READ_WAIT`` seconds, so the page shows it live), confirm it
        once applied, and return the state it ended in."""
        self.stream.send(remote.framed(archive))
        for text, state in self._events(live=True):
            if text.removeprefix("\n").strip():
                self.log(text.removeprefix("\n"))
            if state == "checked":
                self.log("Checks passed; starting the transaction on the host.")
            elif state == "applied":
                self.stream.send(b"commit\n")
            elif state in ("stage-failed", "check-failed", *remote.FINAL_STATES):
                return state
        raise AssertionError("unreachable: _events raises when the channel ends")

    def _events(self, *, live: bool):
        """(text, state) as the host prints them: the text before each marker with its state;
        with ``live``, also the whole lines so far, with no state."""
        while (chunk := self.stream.read()) is not None:
            self.pending += chunk
            while (found := self._next_marker()) is not None:
                yield found
            # Whole lines only: a secret is masked within a line, and the last line may yet
            # turn out to be the start of a marker.
            cut = self.pending.rfind("\n")  # the last newline may begin a marker: kept
            if live and cut > 0:
                text, self.pending = self.pending[:cut], self.pending[cut:]
                yield text, None
        raise TransportError(
            f"The connection to {self.deployment.host} ended before the deployment did"
        )

    def _next_marker(self) -> tuple[str, str] | None:
        start = self.pending.find("\n" + remote.MARK)
        end = self.pending.find("\n", start + 2) if start != -1 else -1
        if end == -1:
            return None
        text, state = self.pending[:start], self.pending[start + 2 : end]
        self.pending = self.pending[end + 1 :]
        return text, state


def _conclude(deployment, session, log, state: str) -> DeploymentStatus:
    session.run(f"rm -rf {shell_quote(remote.folder(deployment.pk))}")
    return _outcome(deployment, log, state)


def _outcome(deployment, log, state: str) -> DeploymentStatus:
    if state == "committed":
        return _finish(deployment, log, DeploymentStatus.SUCCEEDED, "Deployed.")
    if state == "rolled-back":
        return _finish(
            deployment, log, DeploymentStatus.ROLLED_BACK, "Rolled back to the previous files."
        )
    return _finish(deployment, log, DeploymentStatus.FAILED, "The transaction failed.")


def recover_stale(**filters) -> list[DeploymentStatus]:
    """Conclude the running deployments (those of ``filters``) whose worker has been silent for
    longer than the lease, from what their hosts report. Each is claimed for one lease by a
    conditional update, so two workers never recover the same deployment at once."""
    stale = stale_deployments().filter(**filters)
    concluded = []
    for deployment in stale.select_related("host"):
        if stale.filter(pk=deployment.pk).update(heartbeat_at=timezone.now()):
            concluded.append(recover(deployment))
    return concluded


def recover(deployment: Deployment) -> DeploymentStatus:
    """Learn how a deployment whose worker lost the host (its connection, or itself) ended on
    the host."""
    log = Log(deployment, secret_values(deployment.host))
    try:
        with Session(deployment.host) as session:
            _, states = remote.parse_survey(session.run(remote.survey_command()).stdout)
            state = states.get(deployment.pk)
            if state in ("applying", "applied"):
                log(f"The host's transaction is {state}; Mailgate asks again later.")
                return DeploymentStatus.RUNNING
            if state is None or state == "staged":
                session.run(f"rm -rf {shell_quote(remote.folder(deployment.pk))}")
                return _finish(
                    deployment, log, DeploymentStatus.FAILED,
                    "The host says the transaction never started: nothing was changed.",
                )  # fmt: skip
            log(f"The host says its transaction ended {state}.")
            log(session.run(remote.follow_command(deployment.pk, 0)).stdout.partition("\n")[2])
            return _conclude(deployment, session, log, state)
    except TransportError as exc:
        log(f"Still cannot reach the host: {exc}")
        return DeploymentStatus.RUNNING


def _removals(plan: Plan) -> str:
    return f"The plan takes away what {plan.host} holds ({', '.join(plan.destructive)})"


def _hold(deployment: Deployment, plan: Plan, log: Log, message: str) -> DeploymentStatus:
    """Leave the plan, its files recorded, for the owner to approve; it replaces the host's
    earlier waiting plan, and the host's lock is released."""
    log(message)
    Deployment.objects.supersede_waiting(deployment.host)
    deployment.transition(DeploymentStatus.AWAITING, plan_digest=plan.digest)
    return DeploymentStatus.AWAITING


def _finish(deployment, log, status: DeploymentStatus, message: str) -> DeploymentStatus:
    log(message)
    deployment.transition(status, finished_at=timezone.now())
    return status


@transaction.atomic
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
    deployment.units = [unit.record() for unit in plan.bundle.units]
    deployment.destructive = list(plan.destructive)
    deployment.save(update_fields=["units", "destructive"])


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
