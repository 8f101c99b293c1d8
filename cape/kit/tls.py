"""TLS for the connections Cape opens to other servers (mail servers, relays)."""

from __future__ import annotations

import ssl


def client_context(*, ca_file: str = "", verify: bool = True) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and host name.

    With ``ca_file``, only the certificates in that file are trusted (a private server's CA),
    instead of the system's. ``verify=False`` accepts any certificate: the connection is
    encrypted but anyone in the middle can read it; only ever on an explicit setting.
    """
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ValueError) as exc:  # missing file, or no certificate in it (ssl.SSLError)
        raise OSError(f"cannot load the CA file {ca_file}: {getattr(exc, 'strerror', None) or exc}") from exc


def describe_tls_error(exc: Exception) -> str:
    """A reason a person can act on: a refused certificate says why it was refused."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its certificate is not accepted ({exc.verify_message})"
    return str(exc)
