"""A real Celery worker runs Mailgate's tasks: on Redis (production) and on kombu's filesystem
transport (the embedded default, which needs no server)."""

import pytest
from celery import Celery

from hosts.models import Tunnel
from tests.shared import ROOT
from tests.world import build_infrastructure


def rotate_through(app: Celery, tunnel: Tunnel, actor_id: int) -> None:
    before = tunnel.hub_public_key
    app.control.purge()  # nothing left over from an earlier, interrupted run
    result = app.send_task("hosts.tasks.tunnel_rotate_keys", args=[tunnel.pk, actor_id])
    result.get(timeout=60)
    tunnel.refresh_from_db()
    assert tunnel.hub_public_key != before


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_on_a_worker_over_redis(start_worker, owner):
    world = build_infrastructure()
    broker = "redis://127.0.0.1:6379/14"
    start_worker(CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=broker)
    app = Celery(broker=broker, backend=broker, set_as_current=False)
    rotate_through(app, world["tunnel"], owner.pk)
    assert not (ROOT / "control").exists(), "the broker must keep its files in the data folder"


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_on_the_filesystem_broker(start_worker, owner, tmp_path):
    world = build_infrastructure()
    queue = tmp_path / "celery" / "queue"
    for folder in ("queue", "processed", "results", "control"):
        (tmp_path / "celery" / folder).mkdir(parents=True)
    start_worker(CELERY_BROKER_URL="filesystem://")
    app = Celery(
        set_as_current=False,
        broker="filesystem://",
        backend=f"file://{tmp_path / 'celery' / 'results'}",
        broker_transport_options={
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(tmp_path / "celery" / "processed"),
            "control_folder": str(tmp_path / "celery" / "control"),
        },
    )
    rotate_through(app, world["tunnel"], owner.pk)
