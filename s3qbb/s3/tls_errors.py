"""TLS handshake failures: which are transient, and the `~s3qbb.errors.TLSError` of the others.

A failed handshake is not retried (an untrusted certificate or a plain-HTTP
server behind an ``https://`` URL does not heal), except a connection closed or
reset during it, which is as transient as any reset connection.
`s3qbb.s3.errors` routes botocore's ``SSLError`` and the obstore transport's
errors of kind ``"tls"`` here.
"""

from __future__ import annotations

__all__ = ["tls_cut_short", "translate_tls_error"]

from ..errors import TLSError
from ..redaction import redact


def tls_cut_short(exc: BaseException) -> bool:
    """Tell whether botocore's ``SSLError`` is a connection closed or reset during the handshake.

    Like a reset connection (and like the obstore transport's ``tls handshake eof``), that
    is transient; a certificate or protocol error is not.
    """
    # Imported here: only botocore's errors get here (and botocore has imported ssl); a job on the
    # obstore transport does not import ssl (measured with benchmarks.job_start).
    import ssl

    inner = getattr(exc, "kwargs", {}).get("error")
    causes = [inner, *getattr(inner, "args", ())] if isinstance(inner, BaseException) else []
    return any(
        isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError)
        or (isinstance(cause, OSError) and not isinstance(cause, ssl.SSLError) and cause.errno is not None)
        for cause in causes
    )


_TLS_HINTS = (
    ("WRONG_VERSION_NUMBER", "the server did not answer in TLS: is it a plain-HTTP server?"),
    ("InvalidContentType", "the server did not answer in TLS: is it a plain-HTTP server?"),
    ("CERTIFICATE_VERIFY_FAILED", "the server's certificate is not trusted here"),
    ("UnknownIssuer", "the server's certificate is signed by an issuer not trusted here"),
    ("NotValidForName", "the server's certificate is not valid for this host name"),
    ("Expired", "the server's certificate has expired"),
)
"""Plain words for the commonest TLS failures, found in the TLS library's error (message only)."""

_TLS_ADVICE = {
    "boto3": "trust the server's certificate: set AWS_CA_BUNDLE (or ca_bundle in the AWS profile) to a PEM "
    "file of the CA that signed it",
    "obstore": "trust the server's certificate: add the CA that signed it to the system's trust store, "
    "or set SSL_CERT_FILE to a PEM bundle holding it (read instead of the system's certificates; the obstore "
    "transport reads neither AWS_CA_BUNDLE nor an AWS profile's ca_bundle)",
}
"""How each transport is told which certificate authorities to trust (s3qbb has no setting of its own)."""


def translate_tls_error(
    reason: str,
    *,
    transport: str,
    operation: str,
    bucket: str,
    key: str | None = None,
    endpoint: str | None = None,
) -> TLSError:
    """Return the `~s3qbb.errors.TLSError` of a request whose TLS handshake failed.

    Parameters
    ----------
    reason : `str`
        The TLS library's error (e.g. ``[SSL: CERTIFICATE_VERIFY_FAILED] ...``
        or ``InvalidCertificate(UnknownIssuer)``); credentials are masked.
    transport : `str`
        The transport that sent the request (``"boto3"`` or ``"obstore"``):
        it decides how to trust a certificate.
    operation : `str`
        What was attempted.
    bucket : `str`
        Bucket of the request.
    key : `str`, optional
        Object key of the request.
    endpoint : `str`, optional
        Endpoint URL the request went to.

    Returns
    -------
    error : `s3qbb.errors.TLSError`
        Says what failed, why, that retrying will not help and what to check.
    """
    hint = next((words for marker, words in _TLS_HINTS if marker in reason), "")
    uri = f"s3://{bucket}/{key or ''}"
    return TLSError(
        f"{operation} on {uri} failed at {endpoint or 'the default AWS endpoint'}: "
        f"the TLS connection could not be made ({redact(reason) or 'no reason given'}"
        f"{'; ' + hint if hint else ''}); retrying will not help. Check that the scheme of the endpoint "
        "URL matches the server (https:// for TLS, http:// for plain HTTP; S3QBB_S3_ENDPOINT_URL or "
        f"endpoint_url), then {_TLS_ADVICE.get(transport, _TLS_ADVICE['boto3'])}"
    )
