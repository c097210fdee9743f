"""Pages of the DNS app."""

from django.urls import path

from zones import views

app_name = "zones"
urlpatterns = [
    path("dns/", views.dns_list, name="dns-list"),
    path("dns/<int:pk>/", views.dns_domain, name="dns-domain"),
    path("dns/<int:pk>/check/", views.dns_check, name="dns-check"),
    path("dns/<int:pk>/zone/", views.dns_zone_file, name="dns-zone-file"),
    path("dns/<int:pk>/settings/", views.dns_settings, name="dns-settings"),
    path("dns/<int:pk>/push-target/", views.dns_push_target, name="dns-push-target"),
    path("dns/<int:pk>/push/", views.dns_push, name="dns-push"),
    path("dns/<int:pk>/dkim/", views.dkim_generate, name="dkim-generate"),
    path("dns/checks/<int:pk>/", views.dns_check_detail, name="dns-check-detail"),
    path("dns/dkim/<int:pk>/activate/", views.dkim_activate, name="dkim-activate"),
    path("dns/dkim/<int:pk>/retire/", views.dkim_retire, name="dkim-retire"),
    path("dns/dkim/<int:pk>/forget/", views.dkim_forget, name="dkim-forget"),
]
