from gateway.api.base import ScopedViewSet
from keys.api.serializers import OpenPGPKeySerializer
from keys.models import OpenPGPKey


class OpenPGPKeyViewSet(ScopedViewSet):
    queryset = OpenPGPKey.objects.all()
    serializer_class = OpenPGPKeySerializer
    owner_only = False
    select_related = ("mailbox__domain",)
