"""API routes of the DNS app."""

from rest_framework.routers import SimpleRouter

from zones.api import views

router = SimpleRouter()
router.register("dns-zones", views.DnsZoneViewSet, basename="dns-zone")
router.register("dns-checks", views.CheckRunViewSet, basename="dns-check")
router.register("dkim-keys", views.DkimKeyViewSet, basename="dkim-key")
router.register("dns-settings", views.ZoneSettingsViewSet)
router.register("dns-push-targets", views.PushTargetViewSet)
urlpatterns = router.urls
