from django.urls import path

from gateway.crud import Crud
from hosts import deploy_views, forms, views
from hosts.adopt import views as adopt_views
from hosts.models import Host, Relay, Tunnel, TunnelPeer

HOSTS = Crud(
    Host,
    forms.HostForm,
    columns=(
        "name",
        "ssh_address",
        "public_ipv4",
        "tunnel_address",
        "mail_backend",
        "relay",
        "apply_changes",
    ),
    select_related=("relay",),
    row_links=(
        ("Files", "hosts:host-files"),
        ("Plan", "hosts:host-plan"),
        ("Adopt", "hosts:host-adopt"),
        ("Host key", "hosts:host-key"),
    ),
    empty_hint="Add the VPS (gateway) and the home server (mail server) Mailgate configures.",
)
RELAYS = Crud(
    Relay,
    forms.RelayForm,
    columns=("name", "kind", "host", "port", "username", "tls_level"),
    empty_hint="Add a smarthost, such as the Proton Mail Bridge on 127.0.0.1:1025.",
)
TUNNELS = Crud(
    Tunnel,
    forms.TunnelForm,
    columns=("interface", "hub", "listen_port", "subnet", "mtu"),
    select_related=("hub",),
    form_posts=(
        ("Make new WireGuard keys for the hub and every spoke", "hosts:tunnel-rotate-keys"),
    ),
    empty_hint="Create the WireGuard tunnel with the gateway as its hub.",
)
PEERS = Crud(
    TunnelPeer,
    forms.TunnelPeerForm,
    columns=("host", "tunnel", "routed_subnet", "keepalive", "egress_via_hub"),
    select_related=("host", "tunnel"),
    empty_hint="Add the home server as a spoke of the tunnel.",
)

app_name = "hosts"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    *HOSTS.urls("hosts"),
    path("hosts/<int:pk>/files/", views.host_files, name="host-files"),
    path("hosts/<int:pk>/host-key/", deploy_views.host_key, name="host-key"),
    path("hosts/<int:pk>/plan/", deploy_views.host_plan, name="host-plan"),
    path("hosts/<int:pk>/deploy/", deploy_views.host_deploy, name="host-deploy"),
    path("hosts/<int:pk>/adopt/", adopt_views.host_adopt_page, name="host-adopt"),
    path("deploy-all/", deploy_views.deploy_all, name="deploy-all"),
    path("deployments/", deploy_views.deployment_list, name="deployment-list"),
    path("deployments/<int:pk>/", deploy_views.deployment_detail, name="deployment-detail"),
    path("deployments/<int:pk>/log/", deploy_views.deployment_log, name="deployment-log"),
    path(
        "deployments/<int:pk>/approve/", deploy_views.deployment_approve, name="deployment-approve"
    ),
    path(
        "deployments/<int:pk>/rollback/",
        deploy_views.deployment_rollback,
        name="deployment-rollback",
    ),
    *RELAYS.urls("relays"),
    *TUNNELS.urls("tunnels"),
    path("tunnels/<int:pk>/rotate-keys/", views.tunnel_rotate_keys, name="tunnel-rotate-keys"),
    *PEERS.urls("tunnel-peers"),
]
