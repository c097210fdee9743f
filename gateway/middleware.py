from auditlog.middleware import AuditlogMiddleware as BaseAuditlogMiddleware
from django.utils.functional import SimpleLazyObject


def _authenticated_user(request):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


class AuditlogMiddleware(BaseAuditlogMiddleware):
    """Resolve the change log's actor when a change is logged rather than when the request
    starts, so that API clients (authenticated by their token inside the view) are recorded."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: _authenticated_user(request))
