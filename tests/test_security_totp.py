"""Two-factor authentication cannot be skipped: every way in asks for the code once an account has a
confirmed authenticator, a session without it is logged out, and turning two-factor off or making an
API token asks again for the password or a current code (README.md, Logging in)."""

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from gateway.models import ApiToken
from tests.named import PASSWORD


def code_for(device: TOTPDevice, drift: int = 0) -> str:
    return f"{totp(device.bin_key, step=device.step, digits=device.digits, drift=drift):06d}"


@pytest.fixture
def phone(owner):
    return TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)


@pytest.fixture
def verified(client, owner, phone):
    """The owner logged in with password and code."""
    response = client.post(
        reverse("gateway:login"),
        {"username": "owner", "password": PASSWORD, "otp_token": code_for(phone)},
    )
    assert response.status_code == 302
    return client


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_it_sends_the_admin_login_to_the_panel_login_that_asks_for_the_code(client, phone):
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "owner", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response.url == reverse("gateway:login") + "?next=/admin/"
    assert not signed_in(client)
    assert client.get("/admin/").status_code == 302


def test_it_logs_out_a_session_that_skipped_the_second_factor(client, owner, phone):
    client.force_login(owner)  # as Django's admin login did: the password alone
    assert client.get("/admin/").status_code == 302
    assert not signed_in(client)
    client.force_login(owner)
    assert client.get("/api/domains/").status_code == 401
    client.force_login(owner)
    assert client.post(reverse("gateway:security"), {"action": "remove"}).status_code == 302
    assert TOTPDevice.objects.filter(pk=phone.pk).exists()


def test_it_logs_out_a_session_made_before_totp_was_turned_on_elsewhere(client, alice):
    client.force_login(alice)
    assert client.get(reverse("hosts:dashboard")).status_code == 200
    TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    response = client.get(reverse("hosts:dashboard"))
    assert response.status_code == 302 and response.url.startswith(reverse("gateway:login"))


def test_the_session_that_turns_totp_on_stays_signed_in(client, alice):
    client.force_login(alice)
    client.get(reverse("gateway:security"))
    device = TOTPDevice.objects.get(user=alice)
    client.post(reverse("gateway:security"), {"token": code_for(device)})
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(reverse("hosts:dashboard")).status_code == 200


def test_the_admin_works_for_a_verified_owner(verified):
    assert verified.get("/admin/").status_code == 200


def test_the_admin_cannot_remove_a_device_without_asking_again(verified, phone):
    """Only the security page removes a second factor (it asks for the password or a code)."""
    assert verified.get("/admin/otp_totp/totpdevice/").status_code == 404
    delete = f"/admin/otp_totp/totpdevice/{phone.pk}/delete/"
    assert verified.post(delete, {"post": "yes"}).status_code == 404
    assert TOTPDevice.objects.filter(pk=phone.pk).exists()


def test_turning_totp_off_needs_the_password_or_a_current_code(verified, phone):
    page = verified.post(reverse("gateway:security"), {"action": "remove"})
    assert page.status_code == 200 and "again" in page.content.decode()
    verified.post(reverse("gateway:security"), {"action": "remove", "password": "wrong"})
    assert TOTPDevice.objects.filter(pk=phone.pk).exists()
    # The login used this period's code, which django-otp never accepts twice: the next one.
    verified.post(
        reverse("gateway:security"), {"action": "remove", "otp_token": code_for(phone, 1)}
    )
    assert not TOTPDevice.objects.filter(pk=phone.pk).exists()


def test_turning_totp_off_with_the_password(client, alice):
    client.force_login(alice)
    client.get(reverse("gateway:security"))
    device = TOTPDevice.objects.get(user=alice)
    client.post(reverse("gateway:security"), {"token": code_for(device)})
    client.post(reverse("gateway:security"), {"action": "remove", "password": PASSWORD})
    assert not TOTPDevice.objects.filter(user=alice).exists()


def test_making_a_token_on_the_page_needs_the_password_again(client, alice):
    client.force_login(alice)
    page = client.post(reverse("gateway:api-tokens"), {"name": "phone"}).content.decode()
    assert "again" in page and not ApiToken.objects.filter(name="phone").exists()
    client.post(reverse("gateway:api-tokens"), {"name": "phone", "password": "wrong"})
    assert not ApiToken.objects.filter(name="phone").exists()
    client.post(reverse("gateway:api-tokens"), {"name": "phone", "password": PASSWORD})
    assert ApiToken.objects.filter(name="phone", user=alice).exists()


def test_making_a_token_through_the_api_needs_the_password_or_a_code(api, owner, phone):
    client = api(owner)
    refused = client.post("/api/tokens/", {"name": "stolen"}, format="json")
    assert refused.status_code == 400 and "password" in refused.json()["errors"]
    wrong = client.post("/api/tokens/", {"name": "stolen", "password": "x"}, format="json")
    assert wrong.status_code == 400
    made = client.post(
        "/api/tokens/", {"name": "backup", "otp_token": code_for(phone)}, format="json"
    )
    assert made.status_code == 201
    made = client.post("/api/tokens/", {"name": "other", "password": PASSWORD}, format="json")
    assert made.status_code == 201
    assert not ApiToken.objects.filter(name="stolen").exists()


def test_password_guesses_through_the_api_lock_out_as_at_login(api, alice):
    client = api(alice)
    for _ in range(5):
        client.post("/api/tokens/", {"name": "x", "password": "guess"}, format="json")
    response = client.post("/api/tokens/", {"name": "x", "password": PASSWORD}, format="json")
    # The right password is refused like a wrong one while locked out: no hint that it was right.
    assert response.status_code == 400 and list(response.json()["errors"]) == ["password"]
    assert not ApiToken.objects.filter(name="x").exists()
