"""The panel in a real browser (Playwright driving Debian's Chromium, headless): log in with
TOTP, create a domain and a mailbox, confirm a host's key, plan and deploy it to a lab host
while a real Celery worker runs the deployment, and watch the log until it succeeds; the status
page and the topology picture on a desktop and a phone.
Screenshots of each step are kept in ``test-artifacts/browser/``."""

import re
from pathlib import Path

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright import sync_api as playwright

from certs import services as certs_services
from gateway.models import Domain, Mailbox
from tests.certs_world import issue_by_hand
from tests.deploy_world import relay_host
from tests.named import PASSWORD
from tests.shared import ROOT
from tests.status_world import checked_world
from tests.world import build_infrastructure

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous, so Django's guard against ORM use inside a loop does not apply.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: bin/bootstrap --test installs it")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 900})
    yield context.new_page()
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, owner) -> None:
    device = TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)
    page.goto("/login/")
    page.fill("#id_username", "owner")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", f"{totp(device.bin_key, step=device.step, digits=6):06d}")
    shot(page, "01-login")
    page.click("main button[type=submit]")
    page.wait_for_selector("h1:text('Dashboard')")


@pytest.mark.django_db(transaction=True)
def test_the_owner_sets_up_and_deploys_from_the_browser(page, owner, start_worker, labs):
    start_worker()
    lab = labs()
    host = relay_host("relay", lab)
    log_in(page, owner)
    shot(page, "02-dashboard")

    page.goto("/domains/new/")
    page.fill("#id_name", "family.example")
    page.fill("#id_mail_hostname", "mail.family.example")
    page.fill("#id_first_mailbox", "alice")
    page.fill("#id_first_mailbox_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_selector("text=Saved family.example")
    assert Domain.objects.filter(name="family.example").exists()

    page.goto("/mailboxes/new/")
    page.select_option("#id_domain", label="family.example")
    page.fill("#id_local_part", "carol")
    page.fill("#id_display_name", "Carol Example")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_password_again", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_selector("text=Saved carol@family.example")
    assert Mailbox.objects.filter(local_part="carol").exists()
    shot(page, "03-mailboxes")

    page.goto(f"/hosts/{host.pk}/plan/")
    page.wait_for_selector("summary:has-text('/etc/postfix/main.cf')")
    assert page.locator("pre.diff .add").count() > 0
    shot(page, "04-plan")
    page.click("text=Deploy relay")
    page.wait_for_url(re.compile(r"/deployments/\d+/$"))
    page.wait_for_selector("mark.status.succeeded", timeout=60_000)  # htmx polls the log
    assert "+ committed" in page.inner_text("pre.log")
    shot(page, "05-deployed")
    assert b"relayhost" in lab.read("/etc/postfix/main.cf")


def signed_in(browser, live_server, client, user, width: int, height: int):
    client.force_login(user)
    session = client.cookies["sessionid"].value
    viewport = {"width": width, "height": height}
    context = browser.new_context(base_url=live_server.url, viewport=viewport)
    context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
    return context


@pytest.mark.django_db(transaction=True)
def test_the_status_page_and_the_topology(browser, live_server, client, owner, family):
    checked_world(build_infrastructure())
    for name, width, height in (("desktop", 1200, 900), ("phone", 390, 844)):
        context = signed_in(browser, live_server, client, owner, width, height)
        page = context.new_page()
        page.goto("/status/")
        page.wait_for_selector("svg.topology")
        assert page.locator("li.status-item.red").count() == 1
        assert "Start the tunnel on home" in page.inner_text("main")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shot(page, f"07-status-{name}")
        page.goto("/")
        assert page.locator("svg.topology").get_attribute("role") == "img"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shot(page, f"08-dashboard-{name}")
        context.close()


@pytest.mark.django_db(transaction=True)
def test_the_certificates_page(browser, live_server, client, owner, family):
    build_infrastructure()
    mail, gateway = sorted(certs_services.certificates_sync(), key=lambda c: c.purpose != "mail")
    issue_by_hand(mail, days_left=60)
    issue_by_hand(gateway, days_left=-1)
    for name, width, height in (("desktop", 1200, 900), ("phone", 390, 844)):
        context = signed_in(browser, live_server, client, owner, width, height)
        page = context.new_page()
        page.goto("/certificates/")
        text = page.inner_text("main")
        assert "Valid: issued by CN=mail.family.example" in text and "Expired" in text
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shot(page, f"09-certificates-{name}")
        page.click(f"a[href='/certificates/{mail.pk}/']")
        assert "Renew now" in page.inner_text("main")
        shot(page, f"10-certificate-{name}")
        context.close()


@pytest.mark.django_db(transaction=True)
def test_the_pages_fit_a_phone(browser, live_server, client, owner):
    context = signed_in(browser, live_server, client, owner, 390, 844)
    page = context.new_page()
    for path in ("/", "/domains/", "/deployments/", "/status/", "/certificates/"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
    shot(page, "06-phone")
    context.close()


@pytest.mark.django_db(transaction=True)
def test_the_pages_break_no_content_security_policy_rule(browser, live_server, client, owner):
    """The CSP allows no inline script or style: the pages must need none."""
    context = signed_in(browser, live_server, client, owner, 1200, 900)
    page = context.new_page()
    refused = []

    def note(message):
        if "Content Security Policy" in message.text:
            refused.append((page.url, message.text))

    page.on("console", note)
    pages = ("/", "/domains/", "/domains/new/", "/status/", "/certificates/", "/account/security/")
    for path in (*pages, "/api/docs/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    page.wait_for_selector(".swagger-ui .info .title")  # the docs' script ran, from a file
    assert refused == []
    context.close()
