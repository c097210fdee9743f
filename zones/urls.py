"""Pages of the DNS app."""

urlpatterns = []
