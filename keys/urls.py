from gateway.crud import Crud
from keys.forms import OpenPGPKeyForm
from keys.models import OpenPGPKey

KEYS = Crud(
    OpenPGPKey,
    OpenPGPKeyForm,
    columns=("mailbox", "fingerprint", "expires_at"),
    owner_only=False,
    select_related=("mailbox__domain",),
    empty_hint="Add a mailbox's public OpenPGP key so that correspondents find it by WKD.",
)

urlpatterns = KEYS.urls("keys")
