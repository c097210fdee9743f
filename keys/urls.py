from django.urls import path

from gateway.crud import Crud
from keys import forms, services, views
from keys.models import ContactKey, OpenPGPKey, TrustAnchor

KEYS = Crud(
    OpenPGPKey,
    forms.OpenPGPKeyForm,
    create_form_class=forms.OpenPGPKeyUploadForm,
    columns=("mailbox", "fingerprint", "expires_at", "wkd_status", "wkd_url"),
    owner_only=False,
    select_related=("mailbox__domain",),
    row_links=(("Details", "keys:openpgpkey-detail"),),
    form_links=(("Details", "keys:openpgpkey-detail"),),
    template_dir="keys",
    empty_hint="Upload a mailbox's public OpenPGP key (or have Mailgate generate one) so that "
    "correspondents find it by WKD.",
)
TRUST_ANCHORS = Crud(
    TrustAnchor,
    forms.TrustAnchorForm,
    create_form_class=forms.TrustAnchorImportForm,
    columns=("name", "fingerprint", "user_id", "expires_at"),
    template_dir="keys",
    delete_service=lambda anchor: services.trust_anchor_delete(anchor=anchor),
    empty_hint="Import ProtonCA's key so that the keys it certifies for Proton users are valid.",
)
CONTACT_KEYS = Crud(
    ContactKey,
    forms.ContactKeyForm,
    create_form_class=forms.ContactKeyImportForm,
    columns=("label", "addresses", "fingerprint", "validity", "expires_at", "checked_at"),
    template_dir="keys",
    delete_service=lambda contact: services.contact_key_delete(contact=contact),
    empty_hint="Import a correspondent's public key, or fetch it by WKD.",
)


app_name = "keys"
urlpatterns = [
    *KEYS.urls("keys"),
    path("keys/<int:pk>/details/", views.openpgp_key_detail, name="openpgpkey-detail"),
    path("keys/generate/", views.openpgp_key_generate, name="openpgpkey-generate"),
    *TRUST_ANCHORS.urls("keys/trust-anchors"),
    *CONTACT_KEYS.urls("keys/contacts"),
    path("keys/alerts/", views.certification_alerts, name="certification-alerts"),
    path("keys/alerts/check/", views.certifications_check, name="certifications-check"),
]
