"""Tests for s3qbb.datastores.templates: parsing, rendering, sanitisation, lookup."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3qbb.core.records import check_record_path
from s3qbb.datastores.templates import (
    DEFAULT_TEMPLATE,
    MAX_PATH_LENGTH,
    FileTemplate,
    FileTemplates,
    TemplateFields,
    sanitize_run,
    sanitize_segment,
)
from s3qbb.errors import ConfigError, DataIdError, DatasetTypeError, InvalidNameError, S3qbbError

ID = uuid.UUID("4b6c0a1e-8f3d-4c2a-9e7b-1d2f3a4b5c6d")
VISIT_DIMS = frozenset({"instrument", "visit", "detector"})
CALEXP_DATA_ID: dict[str, str | int] = {
    "instrument": "HSC",
    "visit": 903334,
    "detector": 16,
    "band": "r",
    "physical_filter": "HSC-R",
    "day_obs": 20130617,
}


def make_fields(**kwargs: Any) -> TemplateFields:
    values: dict[str, Any] = {
        "run": "HSC/runs/RC2/w_2024_10",
        "dataset_type": "calexp",
        "component": None,
        "dataset_id": ID,
        "data_id": CALEXP_DATA_ID,
        "required_dimensions": VISIT_DIMS,
    }
    values.update(kwargs)
    return TemplateFields(**values)


# --- plain examples ------------------------------------------------------------


def test_default_template_typical_visit_detector() -> None:
    path = FileTemplate(DEFAULT_TEMPLATE).render(make_fields())
    assert path == f"HSC/runs/RC2/w_2024_10/calexp/r/20130617/903334/calexp_16_{ID}"


def test_default_template_component() -> None:
    path = FileTemplate(DEFAULT_TEMPLATE).render(make_fields(component="wcs"))
    assert path == f"HSC/runs/RC2/w_2024_10/calexp.wcs/r/20130617/903334/calexp_wcs_16_{ID}"


def test_default_template_coadd() -> None:
    fields = make_fields(
        dataset_type="deepCoadd",
        data_id={"skymap": "hsc_rings_v1", "tract": 9813, "patch": 42, "band": "g"},
        required_dimensions=frozenset({"skymap", "tract", "patch", "band"}),
    )
    path = FileTemplate(DEFAULT_TEMPLATE).render(fields)
    assert path == f"HSC/runs/RC2/w_2024_10/deepCoadd/g/9813/42/deepCoadd_{ID}"


def test_default_template_no_dimensions() -> None:
    fields = make_fields(dataset_type="packages", data_id={}, required_dimensions=frozenset())
    assert FileTemplate(DEFAULT_TEMPLATE).render(fields) == f"HSC/runs/RC2/w_2024_10/packages/packages_{ID}"


def test_hostile_values_stay_in_one_segment() -> None:
    fields = make_fields(
        run="u/someone/run1",
        component="../../etc",
        data_id={"visit": "../../../x", "detector": "%2F..%2F", "band": "a\\b\x00\n"},
    )
    path = FileTemplate(DEFAULT_TEMPLATE).render(fields)
    assert path == (
        "u/someone/run1/calexp.%2E.%2F..%2Fetc/a%5Cb%00%0A/%2E.%2F..%2F..%2Fx/"
        f"calexp_%2E.%2F..%2Fetc_%252F..%252F_{ID}"
    )


def test_custom_template_and_fields() -> None:
    template = FileTemplate("{run}/{datasetType}/{instrument}/{visit}-{detector}_{id}")
    assert template.fields == frozenset({"run", "datasetType", "instrument", "visit", "detector", "id"})
    assert template.render(make_fields(run="r")) == f"r/calexp/HSC/903334-16_{ID}"
    assert template.template == str(template) == "{run}/{datasetType}/{instrument}/{visit}-{detector}_{id}"
    assert template == FileTemplate(template.template)
    assert hash(template) == hash(FileTemplate(template.template))
    assert template != FileTemplate(DEFAULT_TEMPLATE)


@pytest.mark.parametrize(
    ("template", "data_id", "expected"),
    [
        # Dropped with the separator before it, in the same segment.
        ("{run}/{datasetType}_{visit:?}_{id}", {}, f"r/calexp_{ID}"),
        ("{run}/{datasetType}_{visit:?}_{id}", {"visit": 1}, f"r/calexp_1_{ID}"),
        ("{run}/{datasetType}.{band:?}-{id}", {}, f"r/calexp-{ID}"),
        ("{run}/{datasetType}--{band:?}/{id}", {}, f"r/calexp/{ID}"),
        # At the start of a segment: the separator after it goes instead.
        ("{run}/{visit:?}_{detector:?}_{id}", {"detector": 2}, f"r/2_{ID}"),
        ("{run}/{visit:?}_{detector:?}_{id}", {}, f"r/{ID}"),
        ("{run}/{visit:?}_{detector:?}_{id}", {"visit": 1}, f"r/1_{ID}"),
        # A segment left empty (or with separators only) is dropped.
        ("{run}/{band:?}/{id}", {}, f"r/{ID}"),
        ("{run}/{band:?}.{tract:?}/{id}", {}, f"r/{ID}"),
        ("{run}/.{band:?}./{id}", {}, f"r/{ID}"),
        ("{run}/{band:?}.{tract:?}/{id}", {"tract": 3}, f"r/3/{ID}"),
        # A literal that is not a separator is kept.
        ("{run}/b{band:?}/{id}", {}, f"r/b/{ID}"),
        ("{run}/b={band:?}/{id}", {"band": "g"}, f"r/b=g/{ID}"),
        # A non-optional value made of separators alone is never dropped.
        ("{run}/{band:?}{detector}/{id}", {"detector": "_"}, f"r/_/{ID}"),
    ],
)
def test_optional_fields(template: str, data_id: dict[str, str | int], expected: str) -> None:
    assert FileTemplate(template).render(make_fields(run="r", data_id=data_id)) == expected


def test_optional_component() -> None:
    template = FileTemplate("{run}/{datasetType}.{component:?}/{id}")
    assert template.render(make_fields(run="r")) == f"r/calexp/{ID}"
    assert template.render(make_fields(run="r", component="psf")) == f"r/calexp.psf/{ID}"


def test_missing_required_field_names_field_and_dataset() -> None:
    template = FileTemplate("{run}/{datasetType}/{tract}/{id}")
    with pytest.raises(DataIdError, match=r"\{tract\}") as info:
        template.render(make_fields())
    message = str(info.value)
    assert "calexp" in message and str(ID) in message and "903334" in message and "{tract:?}" in message

    with pytest.raises(DataIdError, match=r"\{component\}"):
        FileTemplate("{run}/{component}/{id}").render(make_fields())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "bool is not a dimension value"),
        (1.5, "must be str or int, not float"),
        (None, "must be str or int, not NoneType"),
        (b"x", "must be str or int, not bytes"),
        ("", "empty string"),
    ],
)
def test_bad_data_id_values(value: Any, message: str) -> None:
    template = FileTemplate(DEFAULT_TEMPLATE)
    with pytest.raises(DataIdError, match=message) as info:
        template.render(make_fields(data_id={"visit": value}))
    assert any("{visit}" in note and "calexp" in note for note in info.value.__notes__)


def test_unused_bad_values_are_ignored() -> None:
    path = FileTemplate("{run}/{id}").render(make_fields(run="r", data_id={"visit": True}))
    assert path == f"r/{ID}"


def test_empty_component_refused() -> None:
    with pytest.raises(DataIdError, match="empty string"):
        FileTemplate(DEFAULT_TEMPLATE).render(make_fields(component=""))


def test_path_length_limit() -> None:
    run = "/".join(["r" * 120] * 7)  # 846 characters
    template = FileTemplate(DEFAULT_TEMPLATE)
    with pytest.raises(DataIdError, match=rf"\d+-byte path .* over the {MAX_PATH_LENGTH}-byte limit"):
        template.render(make_fields(run=run))
    short = make_fields(run=run, data_id={}, dataset_type="x")
    assert len(template.render(short)) <= MAX_PATH_LENGTH


def test_template_fields_validation() -> None:
    with pytest.raises(DatasetTypeError, match=r"calexp\.wcs"):
        make_fields(dataset_type="calexp.wcs")
    with pytest.raises(DatasetTypeError, match="uuid"):
        make_fields(dataset_id=str(ID))


def test_invalid_run_at_render() -> None:
    with pytest.raises(InvalidNameError, match=r"'\.\.'"):
        FileTemplate(DEFAULT_TEMPLATE).render(make_fields(run="u/../x"))


# --- sanitisation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("visit_1.a=b+c@d,e-f", "visit_1.a=b+c@d,e-f"),
        (903334, "903334"),
        (-5, "-5"),
        (0, "0"),
        ("%", "%25"),
        ("/", "%2F"),
        ("%2F", "%252F"),
        ("\\", "%5C"),
        ("\x00", "%00"),
        ("\x1f\x7f", "%1F%7F"),
        (" ", "%20"),
        ("~", "%7E"),
        (".", "%2E"),
        ("..", "%2E."),
        ("...", "%2E.."),
        (".hidden", "%2Ehidden"),
        ("a.", "a."),
        ("é", "%C3%A9"),
        ("\ud800", "%ED%A0%80"),
        ("x" * 128, "x" * 128),
    ],
)
def test_sanitize_segment_examples(value: str | int, expected: str) -> None:
    assert sanitize_segment(value) == expected


def test_sanitize_segment_long_values() -> None:
    value = "x" * 129
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    assert sanitize_segment(value) == "x" * 100 + "~" + digest
    assert sanitize_segment(value) == sanitize_segment("x" * 129)  # stable
    assert sanitize_segment("x" * 129) != sanitize_segment("x" * 130)
    # A %XX escape is never cut in half.
    encoded = sanitize_segment("é" * 100)
    head = encoded.split("~")[0]
    assert re.fullmatch(r"(%[0-9A-F]{2})+", head) and len(head) <= 100


def test_sanitize_segment_refusals() -> None:
    with pytest.raises(DataIdError, match="bool is not a dimension value"):
        sanitize_segment(False)
    with pytest.raises(DataIdError, match="empty"):
        sanitize_segment("")
    with pytest.raises(DataIdError, match="numpy"):
        sanitize_segment(1.0)  # type: ignore[arg-type]


def test_sanitize_run_examples() -> None:
    assert sanitize_run("u/someone/run1") == "u/someone/run1"
    assert sanitize_run("HSC/runs/RC2/w_2024_10/DM-1234") == "HSC/runs/RC2/w_2024_10/DM-1234"
    assert sanitize_run("u/a b/%2F") == "u/a%20b/%252F"
    assert sanitize_run("...") == "%2E.."


@pytest.mark.parametrize("run", ["", "/", "/a", "a/", "a//b", ".", "..", "a/./b", "u/../x", "../x"])
def test_sanitize_run_refusals(run: str) -> None:
    with pytest.raises(InvalidNameError, match="Run name") as info:
        sanitize_run(run)
    assert isinstance(info.value, ValueError) and isinstance(info.value, S3qbbError)


def test_sanitize_run_not_str() -> None:
    with pytest.raises(InvalidNameError, match="must be str"):
        sanitize_run(42)  # type: ignore[arg-type]


# --- invalid templates -----------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", r"does not start with '\{run\}/' at position 0"),
        ("{datasetType}/{id}", r"does not start with '\{run\}/' at position 0"),
        ("x/{run}/{id}", r"does not start with '\{run\}/' at position 0"),
        ("{run}", r"does not start with '\{run\}/'"),
        ("/{run}/{id}", "leading '/' at position 0"),
        ("{run}/", "ends with '/' at position 6"),
        ("{run}/{id}/", "ends with '/' at position 11"),
        ("{run}//{id}", r"empty segment \('//'\) at position 6"),
        ("{run}/./{id}", "segment '.' is only dots at position 6"),
        ("{run}/../{id}", "segment '..' is only dots at position 6"),
        ("{run}/a b/{id}", "character ' ' is not allowed at position 7"),
        ("{run}/a\\b/{id}", "character '\\\\\\\\' is not allowed at position 7"),
        ("{run}/é/{id}", "character 'é' is not allowed at position 6"),
        ("{run}/{id", "'{' is never closed at position 6"),
        ("{run}/id}", "'}' has no matching '{' at position 8"),
        ("{run}/{a{b}}/{id}", r"field \{a\{b\} is malformed at position 6"),
        ("{run}/{}/{id}", r"field \{\} is malformed at position 6"),
        ("{run}/{1visit}/{id}", r"field \{1visit\} is malformed at position 6"),
        ("{run}/{visit:08d}/{id}", r"field \{visit:08d\} is malformed at position 6"),
        ("{run}/a:b/{id}", "':' outside a field at position 7"),
        ("{run}/a?/{id}", "'\\?' outside a field at position 7"),
        ("{run}/{run}/{id}", r"'\{run\}' appears again at position 6"),
        ("{run}/{id:?}", r"'\{id\}' is always present and cannot be optional at position 6"),
        ("{run}/{datasetType:?}/{id}", r"'\{datasetType\}' is always present"),
        ("{run}/{id}/{visit:?}", "last segment can be empty at position 11"),
        ("{run}/{id}/_{visit:?}.{band:?}", "last segment can be empty at position 11"),
    ],
)
def test_invalid_templates(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        FileTemplate(template)
    assert repr(template) in str(info.value)


def test_template_not_str() -> None:
    with pytest.raises(ConfigError, match="must be str"):
        FileTemplate(None)  # type: ignore[arg-type]


# --- uniqueness ------------------------------------------------------------


@pytest.mark.parametrize("dims", [frozenset(), VISIT_DIMS, frozenset({"skymap", "tract", "patch", "band"})])
def test_default_template_is_unique(dims: frozenset[str]) -> None:
    FileTemplate(DEFAULT_TEMPLATE).validate_for(dims)


def test_validate_for_without_id() -> None:
    template = FileTemplate("{run}/{datasetType}.{component:?}/{instrument}/{visit}/{detector}")
    template.validate_for(VISIT_DIMS)
    template.validate_for(["instrument", "visit"])
    with pytest.raises(ConfigError, match=r"missing \{band\}, \{tract\}\. Add them, or include \{id\}"):
        template.validate_for(VISIT_DIMS | {"tract", "band"})


def test_validate_for_optional_dimension() -> None:
    template = FileTemplate("{run}/{datasetType}.{component:?}/{instrument}/{visit:?}/{detector}")
    with pytest.raises(ConfigError, match=r"\{visit\} \(it is optional; drop ':\?'\)"):
        template.validate_for(VISIT_DIMS)


def test_validate_for_dataset_type_and_component() -> None:
    with pytest.raises(ConfigError, match=r"missing \{datasetType\}"):
        FileTemplate("{run}/{component:?}/{visit}").validate_for(["visit"])
    with pytest.raises(ConfigError, match=r"missing \{component:\?\}"):
        FileTemplate("{run}/{datasetType}/{visit}").validate_for(["visit"])
    FileTemplate("{run}/{datasetType}/{visit}").validate_for(["visit"], with_components=False)
    FileTemplate("{run}/{datasetType}_{component}/{visit}").validate_for(["visit"])


def test_validate_for_with_id() -> None:
    FileTemplate("{run}/{component:?}/{id}").validate_for(VISIT_DIMS)
    # Components share the parent's dataset ID, so {id} alone is not enough for them.
    with pytest.raises(ConfigError, match=r"missing \{component:\?\}.*include \{id\} and \{component:\?\}"):
        FileTemplate("{run}/{id}").validate_for(VISIT_DIMS)
    FileTemplate("{run}/{id}").validate_for(VISIT_DIMS, with_components=False)


# --- lookup -----------------------------------------------------------------


def test_lookup_order() -> None:
    templates = FileTemplates(
        {
            "calexp": "{run}/by_dataset_type/{id}",
            "calexp.wcs": "{run}/by_component/{id}",
            "ExposureF": "{run}/by_storage_class/{id}",
        },
        default="{run}/by_default/{id}",
    )
    assert templates.template_for("calexp", "ExposureF").template == "{run}/by_dataset_type/{id}"
    assert templates.template_for("calexp.wcs", "Wcs").template == "{run}/by_component/{id}"
    assert templates.template_for("calexp.psf", "Psf").template == "{run}/by_dataset_type/{id}"
    assert templates.template_for("src", "ExposureF").template == "{run}/by_storage_class/{id}"
    assert templates.template_for("src", "SourceCatalog").template == "{run}/by_default/{id}"
    assert templates.default.template == "{run}/by_default/{id}"


def test_lookup_defaults() -> None:
    assert FileTemplates().template_for("calexp", "ExposureF") == FileTemplate(DEFAULT_TEMPLATE)
    templates = FileTemplates({"default": "{run}/{datasetType}/{id}"}, default="{run}/ignored/{id}")
    assert templates.template_for("calexp", "ExposureF").template == "{run}/{datasetType}/{id}"


def test_lookup_config_errors() -> None:
    with pytest.raises(ConfigError, match="key 'a/b'"):
        FileTemplates({"a/b": "{run}/{id}"})
    with pytest.raises(ConfigError, match="leading '/'") as info:
        FileTemplates({"calexp": "/{run}/{id}"})
    assert info.value.__notes__ == ["In the file template configured for 'calexp'."]
    with pytest.raises(ConfigError, match="does not start"):
        FileTemplates(default="{id}")


# --- properties ---------------------------------------------------------------

TRICKY = [
    ".",
    "..",
    "...",
    "/",
    "../..",
    "%",
    "%2F",
    "%2E%2E",
    "%252F",
    "\x00",
    "\\",
    "..\\..",
    "\n",
    "\x7f",
    "\u200b",
    "é",
    "日本",
    "\ud800",
    "~",
    " ",
    "x" * 129,
    "é" * 60,
]
ANY_CHAR = st.characters(exclude_categories=())  # includes control characters and lone surrogates
TEXT = st.one_of(
    st.sampled_from(TRICKY),
    st.text(ANY_CHAR, min_size=1),
    st.text(st.sampled_from("./%\\\x00aé"), min_size=1, max_size=12),
    # Long values, built cheaply by repetition: they exercise truncation and the length limit.
    st.builds(
        lambda text, times: text * times, st.text(ANY_CHAR, min_size=1, max_size=8), st.integers(16, 80)
    ),
)
VALUE = st.one_of(TEXT, st.integers())
RUN_PART = st.one_of(
    st.sampled_from(["u", "someone", "run1", "...", "%2F", "a\\b", "\x00"]),
    st.text(ANY_CHAR.filter(lambda c: c != "/"), min_size=1, max_size=40),
).filter(lambda part: part not in (".", "..", "_records"))
RUN = st.lists(RUN_PART, min_size=1, max_size=4).map("/".join)
DIMS = ["instrument", "band", "day_obs", "visit", "exposure", "detector", "tract", "patch"]
FIELDS = st.builds(
    TemplateFields,
    run=RUN,
    dataset_type=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
    component=st.none() | TEXT,
    dataset_id=st.uuids(),
    data_id=st.dictionaries(st.sampled_from(DIMS), VALUE),
    required_dimensions=st.just(frozenset()),
)
DEFAULT = FileTemplate(DEFAULT_TEMPLATE)
BASE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def assert_safe(path: str, fields: TemplateFields) -> None:
    assert path.startswith(sanitize_run(fields.run) + "/")
    assert len(path.encode()) <= MAX_PATH_LENGTH
    assert path.isascii() and path.isprintable()  # no NUL, no control characters
    assert "\\" not in path
    for segment in path.split("/"):
        assert segment not in ("", ".", "..")


def render_or_too_long(template: FileTemplate, fields: TemplateFields) -> str | None:
    try:
        return template.render(fields)
    except DataIdError as err:
        assert "-byte limit" in str(err)
        return None


def check_render_is_safe(fields: TemplateFields) -> None:
    path = render_or_too_long(DEFAULT, fields)
    if path is not None:
        assert_safe(path, fields)
        assert path.endswith(f"_{fields.dataset_id}")
        # The records of the dataset will hold this path: the exit-time check must accept it.
        assert check_record_path(path) == path


@settings(BASE, max_examples=2_000)
@given(FIELDS)
def test_render_is_safe(fields: TemplateFields) -> None:
    check_render_is_safe(fields)


@pytest.mark.slow
@settings(BASE, max_examples=10_000)
@given(FIELDS)
def test_render_is_safe_slow(fields: TemplateFields) -> None:
    check_render_is_safe(fields)


def check_distinct_ids(fields: TemplateFields, other_id: uuid.UUID) -> None:
    other = dataclasses.replace(fields, dataset_id=other_id)
    first, second = render_or_too_long(DEFAULT, fields), render_or_too_long(DEFAULT, other)
    if first is not None and second is not None:
        assert (first == second) == (fields.dataset_id == other_id)


@settings(BASE, max_examples=2_000)
@given(FIELDS, st.uuids())
def test_distinct_ids_render_distinct_paths(fields: TemplateFields, other_id: uuid.UUID) -> None:
    check_distinct_ids(fields, other_id)


@pytest.mark.slow
@settings(BASE, max_examples=10_000)
@given(FIELDS, st.uuids())
def test_distinct_ids_render_distinct_paths_slow(fields: TemplateFields, other_id: uuid.UUID) -> None:
    check_distinct_ids(fields, other_id)


NO_ID = FileTemplate("{run}/{datasetType}.{component:?}/{instrument}/{visit}/{detector}")
KEY = st.tuples(RUN, st.none() | TEXT, VALUE, VALUE, VALUE)


def check_distinct_data_ids(first: tuple[Any, ...], second: tuple[Any, ...]) -> None:
    paths = []
    for run, component, instrument, visit, detector in (first, second):
        data_id = {"instrument": instrument, "visit": visit, "detector": detector}
        fields = make_fields(run=run, component=component, data_id=data_id)
        paths.append(render_or_too_long(NO_ID, fields))
        if paths[-1] is None:
            return
        assert_safe(paths[-1], fields)

    def normal(key: tuple[Any, ...]) -> tuple[Any, ...]:  # 5 and "5" are the same value
        return tuple(str(item) if isinstance(item, int) else item for item in key)

    assert (paths[0] == paths[1]) == (normal(first) == normal(second))


@settings(BASE, max_examples=2_000)
@given(KEY, KEY)
def test_distinct_data_ids_render_distinct_paths(first: tuple[Any, ...], second: tuple[Any, ...]) -> None:
    check_distinct_data_ids(first, second)


@pytest.mark.slow
@settings(BASE, max_examples=10_000)
@given(KEY, KEY)
def test_distinct_data_ids_render_distinct_paths_slow(
    first: tuple[Any, ...], second: tuple[Any, ...]
) -> None:
    check_distinct_data_ids(first, second)


@settings(BASE, max_examples=2_000)
@given(VALUE, VALUE)
def test_sanitize_segment_is_injective_and_safe(first: str | int, second: str | int) -> None:
    a, b = sanitize_segment(first), sanitize_segment(second)
    for segment in (a, b):
        assert segment and segment not in (".", "..") and not segment.startswith(".")
        assert re.fullmatch(r"[A-Za-z0-9_.=+@,%~-]+", segment) and len(segment) <= 128
    assert (a == b) == (str(first) == str(second))


@settings(BASE, max_examples=2_000)
@given(RUN, RUN)
def test_sanitize_run_is_injective_and_safe(first: str, second: str) -> None:
    a, b = sanitize_run(first), sanitize_run(second)
    for prefix, run in ((a, first), (b, second)):
        parts = prefix.split("/")
        assert len(parts) == len(run.split("/"))
        assert all(part and part not in (".", "..") and "\\" not in part for part in parts)
        assert prefix.isascii() and prefix.isprintable()
    assert (a == b) == (first == second)
