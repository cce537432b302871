"""The TLS client context of the network sinks (SIEM over HTTPS, syslog over TLS)."""

from __future__ import annotations

import ssl


def client_context(verify: bool, ca_file: str) -> ssl.SSLContext:
    """Verification is on by default, against the system's CAs or `ca_file` instead; `verify = False`
    is the user's explicit opt-out (a lab collector with a self-signed certificate)."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
