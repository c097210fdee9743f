"""Logging in: password, optional TOTP second factor, and throttling of repeated failures."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.named import PASSWORD


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, digits=device.digits):06d}"


def throttle_passed(device: TOTPDevice) -> None:
    """As if the second django-otp throttles a device for after a wrong code had gone by."""
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=2)
    )


def login(client, username, password=PASSWORD, token=""):
    return client.post(
        reverse("gateway:login"), {"username": username, "password": password, "otp_token": token}
    )


def test_it_logs_in_with_a_password(client, alice):
    response = login(client, "alice")
    assert response.status_code == 302
    assert client.get(reverse("hosts:dashboard")).status_code == 200


def test_it_sends_anonymous_visitors_to_the_login_page(client, db):
    response = client.get(reverse("gateway:mailbox-list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("gateway:login"))


def test_it_asks_for_the_code_once_totp_is_on(client, alice):
    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    response = login(client, "alice")
    assert response.status_code == 200
    assert "token" in str(response.context["form"].errors).lower()
    wrong = "000000" if code_for(device) != "000000" else "111111"
    assert login(client, "alice", token=wrong).status_code == 200
    throttle_passed(device)  # django-otp throttles a device for a second after a wrong code
    response = login(client, "alice", token=code_for(device))
    assert response.status_code == 302
    assert client.get(reverse("hosts:dashboard")).context["user"].is_verified()


def test_it_turns_totp_on_after_a_correct_code(client, alice):
    client.force_login(alice)
    page = client.get(reverse("gateway:security"))
    assert "<svg" in page.content.decode()
    device = TOTPDevice.objects.get(user=alice)
    assert not device.confirmed
    client.post(
        reverse("gateway:security"), {"token": "123456" if code_for(device) != "123456" else "1"}
    )
    device.refresh_from_db()
    assert not device.confirmed
    throttle_passed(device)  # django-otp throttles a device for a second after a wrong code
    client.post(reverse("gateway:security"), {"token": code_for(device)})
    device.refresh_from_db()
    assert device.confirmed


def test_it_locks_out_after_five_failures(client, alice):
    for _ in range(4):
        assert login(client, "alice", password="wrong").status_code == 200
    assert login(client, "alice", password="wrong").status_code == 429
    response = login(client, "alice")  # even the right password, for now
    assert response.status_code == 429
    assert client.get(reverse("hosts:dashboard")).status_code == 302
