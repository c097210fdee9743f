from rest_framework.routers import SimpleRouter

from keys.api import views

router = SimpleRouter()
router.register("openpgp-keys", views.OpenPGPKeyViewSet)
router.register("trust-anchors", views.TrustAnchorViewSet)
router.register("contact-keys", views.ContactKeyViewSet)
router.register("certification-alerts", views.CertificationAlertViewSet)

urlpatterns = router.urls
