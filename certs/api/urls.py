"""API routes of the certificates app."""

from rest_framework.routers import SimpleRouter

from certs.api import views

router = SimpleRouter()
router.register("certificates", views.CertificateViewSet, basename="certificate")
urlpatterns = router.urls
