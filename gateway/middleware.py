from auditlog.middleware import AuditlogMiddleware as BaseAuditlogMiddleware
from django.conf import settings
from django.contrib.auth import logout
from django.utils.functional import SimpleLazyObject

from gateway.totp import authenticator


def _authenticated_user(request):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


class AuditlogMiddleware(BaseAuditlogMiddleware):
    """Resolve the change log's actor when a change is logged rather than when the request
    starts, so that API clients (authenticated by their token inside the view) are recorded."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: _authenticated_user(request))


class SecondFactorMiddleware:
    """Log out a session that has not given the second factor while its account has a
    confirmed authenticator: one made before TOTP was turned on, or by a login that did not
    ask for the code (Django's own admin login). So no page and no API call is usable on the
    password alone, whichever way the session was made. Runs after django-otp's OTPMiddleware,
    which says whether the session is verified."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not user.is_verified() and authenticator(user) is not None:
            logout(request)
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Send ``CONTENT_SECURITY_POLICY`` with every response that has none of its own (Django
    5.2 has no built-in CSP), so an injected script or style is not run."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
