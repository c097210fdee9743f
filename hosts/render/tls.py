"""The TLS settings every endpoint Mailgate renders shares: Mozilla's "intermediate" server-side
TLS profile (guidelines 5.7, https://ssl-config.mozilla.org/guidelines/5.7.json), TLS 1.2 and 1.3
with forward-secret AEAD suites only: no anonymous (aNULL) suite, no CBC, no RSA key exchange.
TLS 1.3's suites are all AEAD and stay at the library's defaults. See ``docs/tls.md``.

Port 25 is the one exception: mail between servers is opportunistic (RFC 7435), so there a
client that only speaks an older TLS still gets encryption rather than plain text; only the
anonymous suites are taken away there too.
"""

# OpenSSL names, in Mozilla's order; the client picks (every suite here is strong).
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    ]
)
MIN_PROTOCOL = "TLSv1.2"

# The same profile in Go's names, for Traefik (Go has no DHE suites, and chooses TLS 1.3's).
INTERMEDIATE_GO_SUITES = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
]
