"""Credential redaction: what keeps secrets out of logs, reports and error messages.

`redact` masks credentials in text before s3qbb writes it anywhere (a log
line, an execution report, a provenance file, an error printed by the
command line); `RedactingFormatter` does it for log handlers. Besides the
shapes of credentials (``aws_secret_access_key=...``, access key IDs, URL
passwords), every credential in use is masked literally: those of the
environment and those registered with `register_secrets` (the keys of a
configuration file, those an S3 client resolved from a profile).

This module imports nothing beyond the standard library, so a batch job's
logging is set up before anything heavy is imported.
"""

from __future__ import annotations

__all__ = [
    "CREDENTIAL_ENVIRONMENT_VARIABLES",
    "MIN_SECRET_CHARS",
    "RedactingFormatter",
    "credential_values",
    "redact",
    "register_secrets",
    "registered_secrets",
]

import functools
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pydantic import SecretStr

_SECRETS_LOCK = threading.Lock()
_SECRETS: set[str] = set()
# Process-wide on purpose: like the logging handlers it protects, the set of credentials in use
# belongs to the process, and `redact` must mask a key that came from a configuration file (or a
# profile) wherever its text is written, not only where the configuration is at hand.


def register_secrets(values: Iterable[str | SecretStr | None]) -> None:
    """Add credentials to those `redact` masks in this process.

    Every `~s3qbb.config.S3EndpointConfig` holding explicit credentials registers them when
    it is validated, and every S3 client registers the credentials its AWS
    chain resolved (a profile's shared credentials file among them), so a
    key given only in a configuration file never reaches a report or a log.

    Parameters
    ----------
    values : iterable of `str`, `pydantic.SecretStr` or `None`
        Credentials (access key IDs, secret keys, session tokens); `None`
        and blank values are skipped.
    """
    texts = {(v if isinstance(v, str) else v.get_secret_value()).strip() for v in values if v is not None}
    texts.discard("")
    if texts:
        with _SECRETS_LOCK:
            _SECRETS.update(texts)


def registered_secrets() -> frozenset[str]:
    """Return the credentials registered with `register_secrets` in this process.

    Returns
    -------
    secrets : `frozenset` [`str`]
        Every value registered so far.
    """
    with _SECRETS_LOCK:
        return frozenset(_SECRETS)


_MASK = "***"

# "name=value", "name: value", '"Name": "value"' for names that hold secrets, also with a prefix
# ("MY_AWS_SECRET_ACCESS_KEY", "S3_SECRET_ACCESS_KEY"). The value is on the line of its name, or
# alone on a following, indented line (a YAML value under its key, perhaps after a block scalar's
# "|" or ">", a comment or blank lines; CRLF line endings as well).
_H = r"[^\S\r\n]"  # horizontal white space, no-break spaces included
_ALONE = rf"""(?:"[^"\r\n]*"|'[^'\r\n]*'|\S+){_H}*(?:\#[^\r\n]*)?(?:\r?\n|\r|$)"""
_ASSIGNMENT = (
    r"""(?P<name>(?<![A-Za-z0-9])(?:aws_secret_access_key|aws_session_token|aws_security_token"""
    r"""|secret_access_key|secretaccesskey|secret_key|secretkey|session_token|sessiontoken"""
    r"""|x-amz-security-token|x-amz-signature|signature|password|passwd)["']?)"""
    rf"""(?P<sep>{_H}*[:=](?:{_H}*(?:[|>][-+1-9]*{_H}*)?(?:\#[^\r\n]*)?(?:\r?\n{_H}*)*\r?\n{_H}+"""
    rf"""(?={_ALONE})|{_H}*))"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;&'"]+)"""
)
# A credential in the XML of a service's response (STS: AssumeRole, GetSessionToken).
_XML = r"(?P<open><(?P<tag>SecretAccessKey|SessionToken|SecretKey|Password)>)[^<]*(?P<close></(?P=tag)>)"
# Words that, after a spaced separator, begin prose about the field rather than its value:
# "secret_access_key: Value error, ..." (pydantic), "password: must not be empty",
# "aws_secret_access_key = in the profile". Short English words, not credentials; a registered
# credential is masked literally whatever it is.
_PROSE_WORDS = frozenset(
    (
        "a", "an", "and", "are", "assertion", "at", "be", "been", "but", "can", "cannot", "could", "did",
        "do", "does", "empty", "error", "expected", "extra", "field", "for", "found", "from", "given", "had",
        "has", "have", "if", "in", "input", "invalid", "is", "it", "its", "may", "missing", "must", "need",
        "needed", "needs", "no", "none", "not", "null", "of", "on", "only", "or", "required", "see", "set",
        "should", "string", "the", "this", "to", "too", "unset", "value", "was", "were", "when", "will",
        "with", "would",
    )
)  # fmt: skip
# After "name=" and a space, "other=..." is the next field: "name" is empty, as in a shell's "NAME= cmd".
_NEXT_FIELD = r"[A-Za-z_][\w.\-]*=[^\s=]"
# Password in the user information of a URL: scheme://user:password@host.
_URL_PASSWORD = r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*):[^\s/?#@]*@"
# AWS access key IDs: long-term (AKIA) and temporary (ASIA).
_KEY_ID = r"(?<![A-Za-z0-9])(?P<prefix>AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
# A 40-character base64 token standing alone: the shape of an AWS secret access key.
_SECRET40 = r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
_SECRET_WINDOW = 100
"""Characters either side of an access key ID searched for its secret."""


@functools.cache
def _pattern(source: str, flags: int = 0) -> re.Pattern[str]:
    # Compiled on first use, not at import: a batch job imports this module to set up its logging
    # and, when nothing goes wrong, never redacts anything before its first put.
    return re.compile(source, flags)


def _mask_assignment(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    sep = match["sep"]
    if not quote and sep[-1:].isspace():
        if value.lower() in _PROSE_WORDS:
            return match[0]  # prose naming the field
        if sep.startswith("=") and _pattern(_NEXT_FIELD).match(value):
            return match[0]  # an empty value, then the next field
    return f"{match['name']}{match['sep']}{quote}{_MASK}{quote}"


def _mask_secrets_near_key_ids(text: str) -> str:
    key_ids = _pattern(_KEY_ID).finditer(text)
    windows = [(m.start() - _SECRET_WINDOW, m.end() + _SECRET_WINDOW) for m in key_ids]
    if not windows:
        return text
    pieces: list[str] = []
    last = 0
    for match in _pattern(_SECRET40).finditer(text):
        if any(lo <= match.start() and match.end() <= hi for lo, hi in windows):
            pieces.append(text[last : match.start()])
            pieces.append(_MASK)
            last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)


CREDENTIAL_ENVIRONMENT_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)
"""Environment variables whose values `credential_values` reports (and `redact` masks by default)."""

MIN_SECRET_CHARS = 8
"""Shortest credential value masked literally; shorter ones would mangle ordinary words."""


def credential_values(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Return the credentials in use by this process, for literal masking.

    Parameters
    ----------
    environ : `~collections.abc.Mapping` [`str`, `str`], optional
        Environment to read; `os.environ` (at call time) by default.

    Returns
    -------
    values : `frozenset` [`str`]
        Values of `CREDENTIAL_ENVIRONMENT_VARIABLES`, and every credential
        registered with `register_secrets` (those of each
        `~s3qbb.config.S3EndpointConfig` given in a configuration file or in
        Python, and those each S3 client resolved from a profile or the AWS
        chain), that are at least `MIN_SECRET_CHARS` characters long.
        Whatever their shape (AWS keys or the keys of another S3 service),
        a credential in use is masked wherever it appears.
    """
    env = os.environ if environ is None else environ
    values = [env.get(name, "").strip() for name in CREDENTIAL_ENVIRONMENT_VARIABLES]
    values.extend(registered_secrets())
    return frozenset(v for v in values if len(v) >= MIN_SECRET_CHARS)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Remove credentials from text before it is stored or shown.

    Parameters
    ----------
    text : `str`
        Any text: an error message, a traceback, a warning, a URI.
    secrets : iterable of `str`, optional
        Exact values to mask wherever they appear (those shorter than
        `MIN_SECRET_CHARS` are ignored); `credential_values` (the
        credentials in the environment) by default.

    Returns
    -------
    redacted : `str`
        The text with, replaced by ``***``: every occurrence of ``secrets``;
        values assigned to secret-bearing names (``aws_secret_access_key=...``,
        ``aws_session_token``, ``"SecretAccessKey": "..."``, ``X-Amz-Signature=`` and
        ``X-Amz-Security-Token=`` of presigned URLs, ``password=``); URL
        passwords (``scheme://user:***@host``); 40-character base64 tokens
        within 100 characters of an access key ID; and the access key IDs
        themselves (``AKIA***``, ``ASIA***``). UUIDs, checksums
        (``CRC32C:9ONpcA==``) and ordinary text are left alone. Applying it
        twice changes nothing more.
    """
    literal = credential_values() if secrets is None else {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
    for value in sorted(literal, key=len, reverse=True):  # longest first: one may contain another
        text = text.replace(value, _MASK)
    text = _pattern(_URL_PASSWORD).sub(lambda m: f"{m['head']}:{_MASK}@", text)
    text = _pattern(_ASSIGNMENT, re.IGNORECASE).sub(_mask_assignment, text)
    text = _pattern(_XML, re.IGNORECASE).sub(lambda m: f"{m['open']}{_MASK}{m['close']}", text)
    text = _mask_secrets_near_key_ids(text)
    return _pattern(_KEY_ID).sub(lambda m: f"{m['prefix']}{_MASK}", text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output passes through `redact`.

    The whole formatted record is redacted, the traceback of ``exc_info``
    included, so credentials in messages of any library (botocore's signed
    request headers at debug level among them) never reach the handler's
    stream. The ``s3qbb`` command line installs it; applications embedding
    s3qbb can install it on their own handlers.

    Parameters
    ----------
    fmt, datefmt, style
        As for `logging.Formatter`.
    secrets : iterable of `str`, optional
        Exact values to mask besides the credentials in the environment.

    Examples
    --------
    >>> import logging
    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        *,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(fmt, datefmt, style)
        self._secrets = frozenset(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, then redact the result."""
        return redact(super().format(record), credential_values() | self._secrets)
