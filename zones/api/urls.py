"""API routes of the DNS app."""

from rest_framework.routers import SimpleRouter

router = SimpleRouter()
urlpatterns = router.urls
