"""Credentials in the layouts of configuration files and service responses are masked.

A YAML value on the line under its key (CRLF line endings, a trailing comment, a
blank line between, a block scalar), a name with a prefix (``MY_AWS_SECRET_ACCESS_KEY``,
``S3_SECRET_ACCESS_KEY``), the ``secret_key`` of s3cmd and MinIO, a separator of
Unicode space, and the XML of an STS response. Prose naming the field keeps its words.
"""

from __future__ import annotations

import pytest

from s3qbb import redaction
from s3qbb.redaction import redact

SECRET = "Zq8vP2mK9xR4tL7w"


@pytest.fixture(autouse=True)
def _patterns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_SECRETS", set())


@pytest.mark.parametrize(
    "text",
    [
        f"password:\n  {SECRET}  # production\n",
        f"password:\r\n  {SECRET}\r\nregion: x\r\n",
        f"aws_secret_access_key:\r\n  {SECRET}",
        f"password:\n\n  {SECRET}\n",
        f"password: |\n  {SECRET}\n",
        f"aws_secret_access_key: >-\n  {SECRET}\n",
        f"MY_AWS_SECRET_ACCESS_KEY={SECRET}",
        f"export S3_SECRET_ACCESS_KEY={SECRET}",
        f"secret_key = {SECRET}",
        f'{{"secretKey": "{SECRET}"}}',
        f"AWS_SECRET_KEY={SECRET}",
        f"password:\u00a0{SECRET}",
        f"<Credentials><SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{SECRET}x</SessionToken>",
    ],
    ids=[
        "yaml-comment",
        "yaml-crlf",
        "yaml-crlf-end",
        "yaml-blank-line",
        "yaml-literal",
        "yaml-folded",
        "env-prefixed",
        "env-s3-prefix",
        "s3cmd",
        "minio-json",
        "aws-secret-key",
        "nbsp",
        "sts-xml",
    ],
)
def test_a_credential_in_this_layout_is_masked(text: str) -> None:
    out = redact(text, secrets=())
    assert SECRET not in out, out
    assert "***" in out
    assert redact(out, secrets=()) == out  # twice changes nothing more


@pytest.mark.parametrize(
    "text",
    [
        "secret_access_key: This field is required",
        "password: too short",
        "password: at least 8 characters are needed",
        "aws_secret_access_key: Assertion failed, the key is blank",
        "region: us-east-1\nsigned: yes",
        "passwordless: true",
    ],
)
def test_prose_about_a_field_keeps_its_words(text: str) -> None:
    assert redact(text, secrets=()) == text


def test_registered_secrets_are_masked_in_any_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_SECRETS", {"hunter22-is-the-word"})
    for text in (
        "password: none\n hunter22-is-the-word",
        "x=hunter22-is-the-word",
        "hunter22-is-the-word\r\n",
    ):
        assert "hunter22" not in redact(text)
