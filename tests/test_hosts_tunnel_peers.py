"""A tunnel's spokes as the owner registers them: what makes a spoke's mail leave through the
gateway is checked before it is saved."""

import pytest
from django.core.exceptions import ValidationError

from hosts.models import TunnelPeer
from tests.world import build_infrastructure

pytestmark = pytest.mark.django_db


def test_a_mailu_spoke_sending_through_the_gateway_needs_its_routed_subnet(family):
    world = build_infrastructure()
    home = world["home"]
    home.mail_backend = "mailu"
    home.save()
    peer = TunnelPeer.objects.get(host=home)
    peer.routed_subnet, peer.egress_via_hub = "", True
    with pytest.raises(ValidationError) as refused:
        peer.full_clean()
    assert "routed subnet" in str(refused.value.message_dict["routed_subnet"])
    peer.egress_via_hub = False  # sending from the home line itself needs no subnet
    peer.full_clean()
    peer.host.mail_backend = "postfix-dovecot"  # its own Postfix is marked as it leaves
    peer.egress_via_hub = True
    peer.full_clean()
