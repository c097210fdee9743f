from rest_framework.routers import SimpleRouter

from keys.api.views import OpenPGPKeyViewSet

router = SimpleRouter()
router.register("openpgp-keys", OpenPGPKeyViewSet)

urlpatterns = router.urls
