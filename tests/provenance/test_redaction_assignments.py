"""Properties of `s3qbb.redaction.redact` around credential field names.

A value assigned to a secret-bearing name is always masked, whatever the
quoting and spacing; prose that merely names the field (an error message
saying it is missing or empty) keeps every word.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s3qbb import redaction
from s3qbb.errors import ConfigError
from s3qbb.redaction import redact
from s3qbb.repo import load_repo_config


@pytest.fixture(autouse=True)
def _patterns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test the patterns alone, not the credentials other tests of this worker registered."""
    monkeypatch.setattr(redaction, "_SECRETS", set())


NAMES = [
    "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY",
    "secret_access_key",
    "SecretAccessKey",
    "aws_session_token",
    "AWS_SESSION_TOKEN",
    "SessionToken",
    "session_token",
    "aws_security_token",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "password",
    "PASSWORD",
    "passwd",
]
# Prose after "name: " or "name = " starts with one of these (pydantic's "Value error", "Field required").
STARTS = [
    "is",
    "must",
    "not",
    "required",
    "missing",
    "empty",
    "Value",
    "Field",
    "Input",
    "should",
    "in",
    "needs",
]
WORDS = ["set", "be", "the", "profile", "remove", "it", "give", "its", "error", "a", "valid", "string", "use"]

names = st.sampled_from(NAMES)
# A bare value stops at whitespace, ",", ";", "&" and quotes; a quoted one holds anything but its quote.
bare_values = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=_-.!*",
    min_size=8,
    max_size=60,
).filter(lambda v: v[0].isalnum())
quoted_texts = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="'\"\r\n"), min_size=8, max_size=60
).filter(lambda v: v.strip() == v and len(set(v)) > 2)


@settings(max_examples=300, deadline=None)
@given(
    name=names,
    name_quote=st.sampled_from(["", '"', "'"]),
    sep=st.sampled_from(["=", ":", " = ", ": ", " : ", ":\t", "=  ", "\t=\t", ":\n    "]),
    before=st.sampled_from(["", "error: ", "{", "[default]\n", "config ", "url?x=1&"]),
    after=st.sampled_from(["", "\n", " next", ", next", "; next", "&next=1", "\nother: x", " user=x"]),
    data=st.data(),
)
def test_assigned_values_are_always_masked(
    name: str, name_quote: str, sep: str, before: str, after: str, data: st.DataObject
) -> None:
    value_quote = data.draw(st.sampled_from(["", '"', "'"]))
    value = data.draw(quoted_texts if value_quote else bare_values)
    if sep.startswith(":\n"):
        assume(after in ("", "\n", "\nother: x"))  # a YAML value alone on the indented next line
    assume(value.lower() not in redaction._PROSE_WORDS)  # "password: required" is prose
    if sep.startswith("=") and sep[-1].isspace():
        assume("=" not in value.rstrip("="))  # "NAME=  other=x": an empty NAME, then another field
    opening = f"{name_quote}{name}{name_quote}" if name_quote else name
    assume(value not in f"{before}{opening}{after}")
    text = f"{before}{opening}{sep}{value_quote}{value}{value_quote}{after}"
    out = redact(text)
    assert value not in out
    assert f"{value_quote}***{value_quote}" in out
    assert out.endswith(after)  # nothing after the value is touched
    assert redact(out) == out


@settings(max_examples=300, deadline=None)
@given(
    name=names,
    start=st.sampled_from(STARTS),
    words=st.lists(st.sampled_from(WORDS + STARTS), max_size=8),
    shape=st.sampled_from(
        [
            "{name} {words}",
            "the field {name} {words}",
            "{name} is not set; {words}",
            "{name}: {words}",
            "endpoint.{name}: Value error, {name} {words}",
            "{name} = {words}",
            "{name}:\n{words}",
            "{name}=\n{words}",
            "{name}= other=x {words}",
        ]
    ),
)
def test_prose_naming_a_field_keeps_its_words(name: str, start: str, words: list[str], shape: str) -> None:
    text = shape.format(name=name, words=" ".join([start, *words]))
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "aws_secret_access_key is not set; set it in the profile",
        "the field secret_access_key must not be empty",
        "secret_access_key: is required",
        "password: must not be empty",
        "Signature: expected a hex string",
        "session_token:\nnext line of the message",
        "password= user=x",
    ],
)
def test_messages_naming_a_field_are_unchanged(text: str) -> None:
    assert redact(text) == text


def test_configuration_error_about_an_empty_secret_keeps_its_words() -> None:
    # pydantic's "loc: msg" put "Value" where a value would be, and it was masked.
    endpoint = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": ""}
    with pytest.raises(ConfigError) as info:
        load_repo_config({"datastore": {"root": "s3://bucket/r", "endpoint": endpoint}})
    message = str(info.value)
    assert "datastore.endpoint.secret_access_key: Value error, secret_access_key is empty" in message
    assert "***" not in message
