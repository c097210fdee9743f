"""One address is one thing, enforced by the database. Requests that create a mailbox and an alias
(or two mailboxes) with one address at the same moment, in real threads against PostgreSQL: exactly
one is saved, every other answers 400 saying why, never 500."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from gateway.models import AddressClaim, Alias, Mailbox
from tests.helpers import api_client_for
from tests.named import PASSWORD

ROUNDS = 5


def at_once(requests) -> list:
    """Run the requests in threads released together; each thread has its own connection."""
    start, answers = threading.Barrier(len(requests)), [None] * len(requests)

    def run(index, request):
        try:
            start.wait()
            answers[index] = request()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def mailbox_request(client, domain, local_part):
    body = {"domain": domain.pk, "local_part": local_part, "password": PASSWORD}
    return lambda: client.post("/api/mailboxes/", body, format="json")


def alias_request(client, domain, local_part):
    body = {"domain": domain.pk, "local_part": local_part, "destinations": ["alice@family.example"]}
    return lambda: client.post("/api/aliases/", body, format="json")


@pytest.fixture
def clients(transactional_db, owner, family):
    return [api_client_for(owner) for _ in range(4)]


@pytest.mark.parametrize("make", ["mailbox and alias", "two mailboxes", "two aliases"])
def test_it_keeps_one_of_two_creates_of_one_address_at_the_same_moment(clients, family, make):
    kinds = {
        "mailbox and alias": (mailbox_request, alias_request),
        "two mailboxes": (mailbox_request, mailbox_request),
        "two aliases": (alias_request, alias_request),
    }[make]
    for round_ in range(ROUNDS):
        local_part = f"race{round_}"
        requests = [
            kind(client, family, local_part)
            for kind, client in zip(kinds * 2, clients, strict=True)
        ]
        answers = at_once(requests)
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [201, 400, 400, 400], [answer.content for answer in answers]
        refused = [answer.json() for answer in answers if answer.status_code == 400]
        assert all("exists" in str(body) or "unique" in str(body) for body in refused), refused
        boxes = Mailbox.objects.filter(domain=family, local_part=local_part).count()
        aliases = Alias.objects.filter(domain=family, local_part=local_part).count()
        assert boxes + aliases == 1
        assert AddressClaim.objects.filter(domain=family, local_part=local_part).count() == 1


def test_the_database_refuses_an_alias_for_a_mailbox_address_whoever_writes_it(
    transactional_db, family
):
    with pytest.raises(IntegrityError), transaction.atomic():
        Alias.objects.create(domain=family, local_part="carol", destinations=["x@family.example"])
    assert not Alias.objects.filter(local_part="carol").exists()


def test_a_claim_follows_its_mailbox_when_it_is_renamed_and_deleted(transactional_db, family):
    carol = Mailbox.objects.get(local_part="carol")
    carol.local_part = "caroline"
    carol.save()
    assert carol.address_claim.local_part == "caroline"
    Alias.objects.create(domain=family, local_part="carol", destinations=["x@family.example"])
    carol.delete()
    assert not AddressClaim.objects.filter(local_part="caroline").exists()
