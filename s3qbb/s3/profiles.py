"""An AWS profile that does not exist, or a bad region of the AWS chain, as the configuration errors they are.

boto3 raises ``botocore.exceptions.ProfileNotFound`` (not an
`~s3qbb.errors.S3qbbError`) when a session names a profile of none of the
AWS config files, either at once (``profile`` / ``S3QBB_S3_PROFILE``) or at
its first use (``AWS_PROFILE``). Both transports create boto3 sessions (the
obstore transport for credentials of the AWS chain) inside
`profile_errors`, which turns it into a `~s3qbb.errors.ConfigError` naming
the profile, where it was set and the files looked at.
"""

from __future__ import annotations

__all__ = ["checked_region", "profile_errors", "unknown_profile_error"]

import contextlib
import os
from typing import TYPE_CHECKING

from ..config_checks import region_problem
from ..errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..config import S3EndpointConfig


def _aws_file(variable: str, default: str) -> str:
    path = os.path.expanduser(os.environ.get(variable, "").strip() or default)
    return path if os.path.exists(path) else f"{path} (missing)"


def unknown_profile_error(config: S3EndpointConfig, profile: str) -> ConfigError:
    """Return the `~s3qbb.errors.ConfigError` of a profile none of the AWS config files defines.

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        The endpoint configuration (says where its ``profile`` came from).
    profile : `str`
        The profile boto3 did not find.

    Returns
    -------
    error : `~s3qbb.errors.ConfigError`
        The error, naming the profile, its source and the files looked at.
    """
    if config.profile is not None:
        source = config.field_sources["profile"]
        setting = "profile" if source == "configuration" else source.removeprefix("environment ")
    else:
        source, setting = "environment AWS_PROFILE", "AWS_PROFILE"
    config_file = _aws_file("AWS_CONFIG_FILE", "~/.aws/config")
    credentials_file = _aws_file("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
    return ConfigError(
        f"AWS profile {profile!r} (from {source}) is defined in none of the AWS config files: looked at "
        f"{config_file} (AWS_CONFIG_FILE) and {credentials_file} (AWS_SHARED_CREDENTIALS_FILE). "
        f"Define it there, set {setting} to a profile that exists, or unset it to use the default "
        "AWS credential chain."
    )


@contextlib.contextmanager
def profile_errors(config: S3EndpointConfig) -> Iterator[None]:
    """Turn a ``ProfileNotFound`` of boto3 raised inside into a `~s3qbb.errors.ConfigError`.

    Parameters
    ----------
    config : `s3qbb.config.S3EndpointConfig`
        The endpoint configuration the session is made for.

    Raises
    ------
    ConfigError
        If boto3 did not find the profile.
    """
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ProfileNotFound as err:
        profile = str(err.kwargs.get("profile") or config.profile or os.environ.get("AWS_PROFILE", ""))
        raise unknown_profile_error(config, profile) from None


def checked_region(region: str, source: str) -> str:
    """Return ``region`` if it is a valid region name (botocore's rule), as both transports require.

    The ``region`` of a configuration is checked by the model; this checks
    one of the AWS chain (``AWS_REGION``, ``AWS_DEFAULT_REGION``, a profile).

    Parameters
    ----------
    region : `str`
        The region name.
    source : `str`
        Where it came from (``"environment AWS_REGION"`` ...).

    Returns
    -------
    region : `str`
        ``region``.

    Raises
    ------
    ConfigError
        If it is not a valid region name.
    """
    if (problem := region_problem(region)) is not None:
        raise ConfigError(f"Region {region!r} (from {source}) is not a valid region name: {problem}.")
    return region
