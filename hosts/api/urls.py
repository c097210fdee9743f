from rest_framework.routers import SimpleRouter

from hosts.api import deployments, views

router = SimpleRouter()
router.register("hosts", views.HostViewSet)
router.register("relays", views.RelayViewSet)
router.register("tunnels", views.TunnelViewSet)
router.register("tunnel-peers", views.TunnelPeerViewSet)
router.register("deployments", deployments.DeploymentViewSet, basename="deployment")

urlpatterns = router.urls
