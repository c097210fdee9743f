from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from gateway.models import ApiToken


class ApiTokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token mg_…``; the token is looked up by its SHA-256 digest."""

    def authenticate_credentials(self, key):
        try:
            token = ApiToken.objects.select_related("user").get(digest=ApiToken.digest_of(key))
        except ApiToken.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        user = token.user
        if token.limited:
            # gateway.scoping narrows every queryset; an empty list (its domains deleted) means
            # nothing at all, never everything.
            user.token_domain_ids = list(token.domains.values_list("pk", flat=True))
        return user, token


class TokenPermission(permissions.BasePermission):
    """A read-only token may only read."""

    message = "This API token is read-only."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if isinstance(token, ApiToken) and token.read_only:
            return request.method in permissions.SAFE_METHODS
        return True
