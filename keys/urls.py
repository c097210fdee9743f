from django.urls import path

from gateway.crud import Crud, CrudCreate, CrudDelete, CrudList, CrudUpdate
from keys import forms, services, views
from keys.models import ContactKey, OpenPGPKey, TrustAnchor

KEYS = Crud(
    OpenPGPKey,
    forms.OpenPGPKeyForm,
    create_form_class=forms.OpenPGPKeyUploadForm,
    columns=("mailbox", "fingerprint", "expires_at", "wkd_status", "wkd_url"),
    owner_only=False,
    select_related=("mailbox__domain",),
    row_links=(("Details", "openpgpkey-detail"),),
    empty_hint="Upload a mailbox's public OpenPGP key (or have Mailgate generate one) so that "
    "correspondents find it by WKD.",
)
TRUST_ANCHORS = Crud(
    TrustAnchor,
    forms.TrustAnchorForm,
    create_form_class=forms.TrustAnchorImportForm,
    columns=("name", "fingerprint", "user_id", "expires_at"),
    empty_hint="Import ProtonCA's key so that the keys it certifies for Proton users are valid.",
)
CONTACT_KEYS = Crud(
    ContactKey,
    forms.ContactKeyForm,
    create_form_class=forms.ContactKeyImportForm,
    columns=("label", "addresses", "fingerprint", "validity", "expires_at", "checked_at"),
    empty_hint="Import a correspondent's public key, or fetch it by WKD.",
)


def pages(crud: Crud, prefix: str, delete_service=None) -> list:
    """The Crud pages with the keys app's templates (its sub-navigation, file uploads), and
    deletion through a service where the key must leave Mailgate's keyring too."""
    name = crud.name
    form = {"crud": crud, "template_name": "keys/form.html"}
    delete = views.ServiceDelete if delete_service else CrudDelete
    extra = {"delete_service": delete_service} if delete_service else {}
    return [
        path(
            f"{prefix}/",
            CrudList.as_view(crud=crud, template_name="keys/list.html"),
            name=f"{name}-list",
        ),
        path(f"{prefix}/new/", CrudCreate.as_view(**form), name=f"{name}-create"),
        path(f"{prefix}/<int:pk>/", CrudUpdate.as_view(**form), name=f"{name}-update"),
        path(
            f"{prefix}/<int:pk>/delete/",
            delete.as_view(crud=crud, **extra),
            name=f"{name}-delete",
        ),
    ]


urlpatterns = [
    *pages(KEYS, "keys"),
    path("keys/<int:pk>/details/", views.openpgp_key_detail, name="openpgpkey-detail"),
    path("keys/generate/", views.openpgp_key_generate, name="openpgpkey-generate"),
    *pages(
        TRUST_ANCHORS,
        "keys/trust-anchors",
        lambda anchor: services.trust_anchor_delete(anchor=anchor),
    ),
    *pages(
        CONTACT_KEYS,
        "keys/contacts",
        lambda contact: services.contact_key_delete(contact=contact),
    ),
    path("keys/alerts/", views.certification_alerts, name="certification-alerts"),
    path("keys/alerts/check/", views.certifications_check, name="certifications-check"),
]
