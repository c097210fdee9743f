"""TOTP on top of django-otp: enrolment (a QR code for the authenticator app, and
confirmation), the account's one authenticator, and asking again who is at the keyboard before
a change that could lock its owner out or make a new credential."""

import base64

import django_otp
import qrcode
import qrcode.image.svg
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django_otp import devices_for_user
from django_otp.plugins.otp_totp.models import TOTPDevice


def qr_svg(config_url: str) -> str:
    image = qrcode.make(config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


def base32_secret(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode("ascii")


def authenticator(user) -> TOTPDevice | None:
    """The account's confirmed authenticator: there is at most one (see gateway.views.security)."""
    return next(devices_for_user(user, confirmed=True), None)


def verify_new_device(request, device: TOTPDevice, token: str) -> bool:
    """Confirm ``device`` with its first code; the session that did it counts as verified, so
    the second-factor middleware does not log it out."""
    if not token.strip().isdigit() or not device.verify_token(token.strip()):
        return False
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    django_otp.login(request, device)
    return True


def reauthenticate(request, *, password: str = "", otp_token: str = "") -> None:
    """Refuse unless the signed-in user proves again who they are, with their password or a
    current code of their authenticator. The password goes through ``authenticate`` so that
    django-axes counts and locks out guesses exactly as at login (a stolen session or token
    cannot try passwords freely); codes are throttled by django-otp."""
    user = request.user
    device = authenticator(user) if otp_token else None
    if device is not None and django_otp.verify_token(
        user, device.persistent_id, otp_token.strip()
    ):
        return
    if password:
        again = authenticate(request, username=user.get_username(), password=password)
        if again is not None and again.pk == user.pk:
            return
    raise ValidationError(
        {"password": "Enter your password, or a current code from your authenticator, again."},
        code="reauthentication",
    )
