from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from gateway import forms, selectors, views
from gateway.crud import Crud
from gateway.models import Alias, Domain, Mailbox

DOMAINS = Crud(
    Domain,
    forms.DomainForm,
    create_form_class=forms.DomainCreateForm,
    columns=("name", "mail_hostname", "enabled", "managers"),
    prefetch_related=("managers",),
    delete_effects=selectors.domain_delete_effects,
    liveness=True,
    empty_hint="Add your first domain; its standard aliases (postmaster@, abuse@ …) come with it.",
)
MAILBOXES = Crud(
    Mailbox,
    forms.MailboxForm,
    columns=("address", "display_name", "quota_mb", "quota_used", "enabled"),
    owner_only=False,
    select_related=("domain",),
    form_links=(
        ("Change password", "gateway:mailbox-password"),
        ("Device passwords", "gateway:app-passwords"),
        ("Set up a phone", "gateway:mailbox-phone"),
    ),
    liveness=True,
    empty_hint="Create a mailbox for each person who receives mail.",
)
ALIASES = Crud(
    Alias,
    forms.AliasForm,
    columns=("address", "destinations", "allowed_as_sender", "enabled"),
    owner_only=False,
    select_related=("domain",),
    liveness=True,
    empty_hint="Aliases forward an address to one or more mailboxes.",
)

# The core app's pages, named in the "gateway" namespace as each app names its own.
pages = [
    path("login/", auth_views.LoginView.as_view(form_class=forms.LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/security/", views.security, name="security"),
    path("account/tokens/", views.api_tokens, name="api-tokens"),
    path("mailboxes/<int:pk>/password/", views.mailbox_password, name="mailbox-password"),
    path("mailboxes/<int:pk>/settings/", views.mailbox_settings, name="mailbox-settings"),
    path("mailboxes/<int:pk>/devices/", views.app_passwords, name="app-passwords"),
    path("mailboxes/<int:pk>/phone/", views.mailbox_phone, name="mailbox-phone"),
    path("mailboxes/<int:pk>/profile.mobileconfig", views.mailbox_profile, name="mailbox-profile"),
    # Mail programs' own set-up requests (Thunderbird, Outlook), public as they ask them.
    path("mail/config-v1.1.xml", views.autoconfig, name="autoconfig"),
    path(".well-known/autoconfig/mail/config-v1.1.xml", views.autoconfig),
    path("autodiscover/autodiscover.xml", views.autodiscover, name="autodiscover"),
    path("Autodiscover/Autodiscover.xml", views.autodiscover),
    path("status/", views.status, name="status"),
    *DOMAINS.urls("domains"),
    *MAILBOXES.urls("mailboxes"),
    *ALIASES.urls("aliases"),
    # The admin's own login form asks no second factor: every login goes through the panel's.
    path(
        "admin/login/",
        RedirectView.as_view(pattern_name="gateway:login", query_string=True),
        name="admin-login",
    ),
]

urlpatterns = [
    path("", include((pages, "gateway"))),
    path("api/", include(("gateway.api.urls", "api"))),
    path("admin/", admin.site.urls),
    path("", include("keys.urls")),
    path("", include("zones.urls")),
    path("", include("hosts.urls")),
    path("", include("certs.urls")),
]

# Under /api/ even a path no route matches, or a crash, answers in the API's one error shape.
handler404 = "gateway.api.exceptions.not_found"
handler500 = "gateway.api.exceptions.server_error"
