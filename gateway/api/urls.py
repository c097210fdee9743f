from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from gateway.api import views

router = DefaultRouter()
router.register("domains", views.DomainViewSet)
router.register("mailboxes", views.MailboxViewSet)
router.register("aliases", views.AliasViewSet)
router.register("tokens", views.ApiTokenViewSet, basename="apitoken")
router.register("app-passwords", views.AppPasswordViewSet, basename="apppassword")
router.register("status", views.StatusItemViewSet, basename="statusitem")
router.register("status-changes", views.StatusChangeViewSet, basename="statuschange")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's set-up script as a file: the CSP allows no inline one.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("", include("hosts.api.urls")),
    path("", include("keys.api.urls")),
    path("", include("zones.api.urls")),
    path("", include("certs.api.urls")),
    *router.urls,
]
