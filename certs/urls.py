"""Pages of the certificates app."""

from django.urls import path

from certs import views

app_name = "certs"
urlpatterns = [
    path("certificates/", views.certificate_list, name="certificate-list"),
    path("certificates/renew/", views.certificates_renew, name="certificates-renew"),
    path("certificates/<int:pk>/", views.certificate_detail, name="certificate-detail"),
    path("certificates/<int:pk>/chain.pem", views.certificate_chain, name="certificate-chain"),
    path("certificates/<int:pk>/renew/", views.certificate_renew, name="certificate-renew"),
]
