"""Checks of the configuration models' values and of the ``S3QBB_*`` environment, without pydantic models.

`s3qbb.config` uses these: the rule an endpoint URL and a region name must
follow (checked when a configuration is validated, so that a value neither
boto3 nor obstore can use fails there, naming the field, and never at the
first request with a library's own exception), how a validation error of a
configuration read from the environment names the variable of each value,
and the warning about a set ``S3QBB_*`` variable that nothing reads.
"""

from __future__ import annotations

__all__ = [
    "OTHER_ENV_VARIABLES",
    "REGION_PATTERN",
    "blank_credential_problem",
    "endpoint_url_problem",
    "region_problem",
    "warn_unknown_variables",
    "with_sources",
]

import ipaddress
import logging
import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from pydantic import ValidationError

_LOG = logging.getLogger("s3qbb.config")

REGION_PATTERN = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$")
"""botocore's rule for a region name (``botocore.utils.validate_region_name``); obstore has none."""

_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?$")
_PATH = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$")
"""RFC 3986's path characters (object_store panics on others, e.g. a backquote)."""

OTHER_ENV_VARIABLES: Mapping[str, str] = {
    "S3QBB_GRACE_PERIOD": "s3qbb run-quantum (s3qbb.batch.signals)",
    "S3QBB_WEED_BINARY": "s3qbb.testing",
    "S3QBB_REQUIRE_SEAWEEDFS": "s3qbb.testing",
    "S3QBB_REQUIRE_LOCALSTACK": "s3qbb.testing",
    "S3QBB_LOCALSTACK_URL": "s3qbb.testing",
    "S3QBB_LOCALSTACK_VENV": "s3qbb.testing",
    "S3QBB_LOCALSTACK_PYTHON": "s3qbb.testing",
    "S3QBB_LOCALSTACK_S3_DIR": "s3qbb.testing (set for the LocalStack it starts)",
    "S3QBB_LOCALSTACK_STATE": "localstack/start.sh",
    "S3QBB_LOCALSTACK_PORT": "localstack/start.sh",
    "S3QBB_LOCALSTACK_TIMEOUT": "localstack/start.sh",
    "S3QBB_LOCALSTACK_STOP_GRACE": "localstack/stop.sh",
    "S3QBB_TEST_POSTGRES_URL": "s3qbb's own tests",
    "S3QBB_REQUIRE_POSTGRES": "s3qbb's own tests",
    "S3QBB_TEST_POSTGRES_DIR": "s3qbb's own tests (the PostgreSQL cluster make test starts)",
}
"""The ``S3QBB_*`` variables read outside the configuration models, and what reads them.

The models' variables come from the models (`s3qbb.config.known_env_variables`);
``tests/docs/test_config_reference.py`` checks that every ``S3QBB_*`` name in
the library's code is one of the two.
"""


def endpoint_url_problem(value: str) -> str | None:
    """Return what makes ``value`` unusable as an endpoint URL, or `None` if it is well-formed.

    A well-formed endpoint is ``http://`` or ``https://``, a non-empty host
    (a name, an IPv4 address or a bracketed IPv6 address), an optional port
    from 1 to 65535 and an optional path; printable ASCII only, without
    user name or password, query or fragment. boto3 and obstore both accept
    such a URL; obstore panics on some others (``http://``).

    Parameters
    ----------
    value : `str`
        The endpoint URL.

    Returns
    -------
    problem : `str` or `None`
        The problem, as the end of a sentence.
    """
    if not value.isascii() or any(c.isspace() or not c.isprintable() for c in value):
        return "it holds whitespace, control or non-ASCII characters"
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if "?" in value or "#" in value:
        return "it must not have a query ('?...') or a fragment ('#...')"
    netloc, slash, path = rest.partition("/")
    if not _PATH.match(slash + path):
        return "its path holds characters a URL path cannot (percent-encode them)"
    if "@" in netloc:
        return (
            "it must not hold a user name or password; give credentials as access_key_id and "
            "secret_access_key, or through the AWS credential chain"
        )
    if netloc.startswith("["):
        host, bracket, port = netloc[1:].partition("]")
        if not bracket:
            return "its host lacks a ']'"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"its host [{host}] is not an IPv6 address"
        if port and not port.startswith(":"):
            return "it has text after the bracketed host"
        port = port[1:] if port else None  # type: ignore[assignment]
    else:
        host, colon, port = netloc.partition(":")
        port = port if colon else None  # type: ignore[assignment]
        if not host:
            return "it has no host"
        labels = host.removesuffix(".").split(".")
        if not all(_HOST_LABEL.match(label) for label in labels):
            return f"its host {host!r} is not a host name or an IP address"
        if labels[-1].isdigit():  # URL parsers read it as an IPv4 address
            try:
                ipaddress.IPv4Address(host.removesuffix("."))
            except ValueError:
                return f"its host {host!r} is not an IPv4 address"
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"its port {port!r} is not a number from 1 to 65535"
    return None


def shown_url(value: str) -> str:
    """Return ``value`` for a message: a user name and password, if any, replaced by ``***``."""
    scheme, sep, rest = value.partition("://")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = f"***@{netloc.rpartition('@')[2]}"
    return f"{scheme}{sep}{netloc}{slash}{path}"


def region_problem(value: str) -> str | None:
    """Return what makes ``value`` unusable as a region name (botocore's rule), or `None`.

    Parameters
    ----------
    value : `str`
        The region name.

    Returns
    -------
    problem : `str` or `None`
        The problem, as the end of a sentence.
    """
    if REGION_PATTERN.match(value):
        return None
    return (
        "a region name is 1 to 63 letters, digits and '-', not starting or ending with '-' (e.g. us-east-1)"
    )


def blank_credential_problem(name: str, value: str) -> str | None:
    """Return why an empty (or blank) credential value is refused, or `None` if it is not blank."""
    if value.strip():
        return None
    return (
        f"{name} is empty: remove it (and the other credentials of the configuration) to use the "
        "AWS credential chain, or give its value"
    )


def with_sources(err: ValidationError, sources: Mapping[str, str]) -> ValidationError:
    """Return ``err`` with each message naming where its value came from, if not the configuration.

    A field's error gets ``(from environment VARIABLE)``; an error of the
    whole model (two fields inconsistent) lists the variables that set some
    of its fields. The location, type and input of each error are kept.

    Parameters
    ----------
    err : `pydantic.ValidationError`
        The error of a configuration model.
    sources : `~collections.abc.Mapping` [`str`, `str`]
        Where each field came from (``"environment VARIABLE"``, ...).

    Returns
    -------
    err : `pydantic.ValidationError`
        The same errors, their messages completed.
    """
    from pydantic import ValidationError
    from pydantic_core import PydanticCustomError

    from_env = {
        name: s.removeprefix("environment ") for name, s in sources.items() if s.startswith("environment ")
    }
    if not from_env:
        return err
    lines: list[Any] = []
    for error in err.errors():
        loc = tuple(error["loc"])
        message = str(error["msg"])
        if loc and loc[0] in from_env:
            message += f" (from environment {from_env[str(loc[0])]})"
        elif not loc:
            message += f" (values from the environment: {', '.join(sorted(from_env.values()))})"
        lines.append(
            {
                "type": PydanticCustomError(
                    str(error["type"]), message.replace("{", "{{").replace("}", "}}")
                ),
                "loc": loc,
                "input": error["input"],
            }
        )
    return ValidationError.from_exception_data(err.title, lines)


_SEEN: set[str] = set()
"""Variables already warned about, or known to be read: each is looked at once per process."""
_SEEN_LOCK = threading.Lock()


def warn_unknown_variables(
    environ: Mapping[str, str], prefix: str, known: Callable[[], Collection[str]]
) -> list[str]:
    """Log a WARNING, once per process and name, for each set ``S3QBB_*`` variable nothing reads.

    Parameters
    ----------
    environ : `~collections.abc.Mapping` [`str`, `str`]
        The environment a configuration is read from.
    prefix : `str`
        ``S3QBB_``.
    known : `~collections.abc.Callable`
        Returns every variable s3qbb reads; called only when a variable with
        the prefix is not yet known to be either read or warned about.

    Returns
    -------
    names : `list` [`str`]
        The variables warned about by this call.
    """
    # Names first: `os.environ` decodes a value only when asked, and most variables lack the prefix.
    candidates = [n for n in environ if n.startswith(prefix) and n not in _SEEN and environ[n]]
    if not candidates:
        return []
    names = set(known())
    unknown = sorted(n for n in candidates if n not in names)
    with _SEEN_LOCK:
        unknown = [n for n in unknown if n not in _SEEN]
        _SEEN.update(unknown)
        _SEEN.update(n for n in candidates if n in names)
    for name in unknown:
        import difflib  # imported here: only a misspelt variable needs it, not every job's start

        close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        _LOG.warning(
            "Environment variable %s is set, but no s3qbb setting reads it (ignored); %s"
            "docs/configuration.rst lists the variables s3qbb reads.",
            name,
            hint,
        )
    return unknown
