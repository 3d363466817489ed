"""Tests for s3qbb.formatters.npy, including ranged reads."""

from __future__ import annotations

import io
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from s3qbb.errors import FormatterError, InvalidParameterError
from s3qbb.formatters.base import RangeReadable
from s3qbb.formatters.npy import NpyFormatter, normalize_rows, parse_npy_header

# numpy warns when it picks format 3.0 (non-latin-1 field names); irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore:Stored array in format 3.0:UserWarning")

dtypes = st.one_of(
    hnp.scalar_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?"),
    hnp.byte_string_dtypes(max_len=5),
    hnp.unicode_string_dtypes(max_len=5),
    hnp.array_dtypes(allow_subarrays=True, max_size=3),
)
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=7))
indices = st.none() | st.integers(-12, 12)
row_selections = st.one_of(
    # Negative steps too: a reversed or strided-backwards selection is still one contiguous range.
    st.builds(slice, indices, indices, st.none() | st.integers(-4, 4).filter(bool)),
    st.tuples(indices, indices),
)


def same(a: Any, b: Any) -> bool:
    """Bitwise equality (NaN-safe, dtype- and shape-exact)."""
    return bool(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())


def as_slice(rows: Any) -> slice:
    return rows if isinstance(rows, slice) else slice(*rows)


def encode(array: Any, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    try:
        np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    except UnicodeEncodeError:
        assume(False)  # versions 1 and 2 cannot hold non-latin-1 field names
    return buffer.getvalue()


def ranged_read(fmt: NpyFormatter, data: bytes, header: bytes, params: dict[str, Any]) -> Any:
    plan = fmt.plan_range(header, params)
    assert plan is not None
    start, stop = plan
    assert 0 <= start < stop <= len(data)
    return fmt.read_range(header, data[start:stop], params, np.ndarray)


@settings(max_examples=150, deadline=None)
@given(arrays, row_selections, st.sampled_from([None, (1, 0), (2, 0), (3, 0)]), st.booleans())
def test_rows_full_and_ranged_match_full_slice(
    array: Any, rows: Any, version: tuple[int, int] | None, header_only: bool
) -> None:
    fmt = NpyFormatter()
    data = encode(array, version)
    full = fmt.read(data, np.ndarray)
    assert same(full, array)
    expected = full[as_slice(rows)]
    params = {"rows": rows}

    in_memory = fmt.read(data, np.ndarray, params)
    assert same(in_memory, expected)
    assert in_memory.flags.writeable

    parsed = parse_npy_header(data)
    assert parsed is not None and parsed.fortran_order is False
    header = data[: parsed.data_offset] if header_only else data[: fmt.header_nbytes]
    got = ranged_read(fmt, data, header, params)
    assert same(got, expected)
    assert got.flags.writeable and got.flags.owndata


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(hnp.floating_dtypes(), st.tuples(st.integers(0, 50), st.integers(1, 4))), row_selections)
def test_range_covers_only_selected_rows(array: Any, rows: Any) -> None:
    fmt = NpyFormatter()
    data = encode(array)
    plan = fmt.plan_range(data[:4096], {"rows": rows})
    assert plan is not None
    start, stop = plan
    selected = range(*as_slice(rows).indices(array.shape[0]))
    row_nbytes = array.dtype.itemsize * array.shape[1]
    if len(selected):
        assert stop - start == (abs(selected[-1] - selected[0]) + 1) * row_nbytes
    else:
        assert stop - start == 1  # never an empty HTTP range


def test_is_range_readable() -> None:
    fmt = NpyFormatter()
    assert isinstance(fmt, RangeReadable)
    assert fmt.header_nbytes == 4096


def test_round_trip_without_rows_and_memoryview() -> None:
    fmt = NpyFormatter()
    array = np.arange(24, dtype=">f8").reshape(2, 3, 4)
    data = fmt.write(array)
    assert data.startswith(b"\x93NUMPY")
    back = fmt.read(memoryview(data))
    assert same(back, array)
    assert fmt.plan_range(data[:4096], {}) is None


def test_zero_dim_array() -> None:
    fmt = NpyFormatter()
    data = fmt.write(np.array(3.5))
    assert fmt.read(data) == 3.5
    with pytest.raises(InvalidParameterError, match="0-d"):
        fmt.read(data, None, {"rows": slice(0, 1)})
    with pytest.raises(InvalidParameterError, match="0-d"):
        fmt.plan_range(data, {"rows": slice(0, 1)})


def test_fortran_order_reads_fully() -> None:
    fmt = NpyFormatter()
    array = np.asfortranarray(np.arange(20, dtype="i4").reshape(5, 4))
    data = fmt.write(array)
    parsed = parse_npy_header(data)
    assert parsed is not None and parsed.fortran_order
    params = {"rows": slice(1, 4)}
    assert fmt.plan_range(data[:4096], params) is None
    assert same(fmt.read(data, None, params), array[1:4])
    with pytest.raises(FormatterError, match="read the whole file"):
        fmt.read_range(data[:4096], data, params, None)


def test_header_longer_than_prefix() -> None:
    fmt = NpyFormatter()
    data = fmt.write(np.arange(10))
    parsed = parse_npy_header(data)
    assert parsed is not None
    params = {"rows": (2, 5)}
    for cut in (0, 5, 9, parsed.data_offset - 1):
        assert fmt.plan_range(data[:cut], params) is None
    assert fmt.plan_range(data[: parsed.data_offset], params) == (
        parsed.data_offset + 2 * 8,
        parsed.data_offset + 5 * 8,
    )


def test_wide_header_beyond_header_nbytes() -> None:
    fmt = NpyFormatter()
    dtype = np.dtype([(f"field_{i:04d}", "<f4") for i in range(400)])
    array = np.zeros(6, dtype=dtype)
    array["field_0007"] = np.arange(6)
    data = fmt.write(array)
    parsed = parse_npy_header(data)
    assert parsed is not None and parsed.data_offset > fmt.header_nbytes
    params = {"rows": slice(1, 5, 2)}
    assert fmt.plan_range(data[: fmt.header_nbytes], params) is None
    assert same(fmt.read(data, None, params), array[1:5:2])
    assert same(ranged_read(fmt, data, data[: parsed.data_offset], params), array[1:5:2])


def test_version_3_unicode_field_names() -> None:
    fmt = NpyFormatter()
    array = np.zeros(4, dtype=[("λ", "<i2"), ("名", "<f8")])
    array["λ"] = [1, 2, 3, 4]
    data = fmt.write(array)
    parsed = parse_npy_header(data)
    assert parsed is not None and parsed.version == (3, 0)
    assert same(ranged_read(fmt, data, data[:4096], {"rows": (-2, None)}), array[-2:])


def test_read_range_checks_length() -> None:
    fmt = NpyFormatter()
    data = fmt.write(np.arange(10, dtype="i8"))
    params = {"rows": (0, 3)}
    plan = fmt.plan_range(data, params)
    assert plan is not None
    with pytest.raises(FormatterError, match="expected 24 bytes"):
        fmt.read_range(data, data[plan[0] : plan[1] - 1], params, None)


@pytest.mark.parametrize(
    "rows",
    [
        slice(0, 5, 0),
        slice(0.5, 2),
        slice(True, 2),
        (1, 2, 3),
        ("a", 2),
        "0:3",
        5,
        None,
    ],
)
def test_bad_rows(rows: Any) -> None:
    fmt = NpyFormatter()
    data = fmt.write(np.arange(10))
    with pytest.raises(InvalidParameterError, match="rows"):
        fmt.read(data, None, {"rows": rows})
    with pytest.raises(InvalidParameterError, match="rows"):
        fmt.plan_range(data, {"rows": rows})
    with pytest.raises(InvalidParameterError, match="rows"):
        fmt.validate_parameters({"rows": rows})


def test_rows_accepts_numpy_integers_and_lists() -> None:
    assert normalize_rows((np.int64(1), np.int32(-1))) == slice(1, -1)
    assert normalize_rows([2, None]) == slice(2, None)
    fmt = NpyFormatter()
    data = fmt.write(np.arange(10))
    assert list(fmt.read(data, None, {"rows": (np.int64(-3), None)})) == [7, 8, 9]


_ROWS_FORMS: list[Any] = [
    slice(2, 5),
    (2, 5),
    [2, 5],
    [2, None],
    (np.int64(-3), None),
    slice(None, None, -2),
    slice(0, 5, 0),
    (1, 2, 3),
    [1, 2, 3],
    ("a", 2),
    (True, 2),
    "0:3",
    5,
]


@pytest.mark.parametrize("rows", _ROWS_FORMS, ids=repr)
def test_rows_one_rule_for_formatter_and_storage_class(rows: Any) -> None:
    """A read from storage (the formatter) and a cache hit (the storage class) accept the same ``rows``.

    Both return ``array[rows]`` for a range, or both refuse the parameter: a get must not succeed or
    fail depending on whether the dataset happens to be cached.
    """
    from s3qbb.core.dataset_type import default_storage_classes

    numpy_sc = default_storage_classes().getStorageClass("NumpyArray")
    array = np.arange(30.0).reshape(10, 3)
    fmt = NpyFormatter()
    data = fmt.write(array)
    outcomes = []
    for read in (
        lambda: fmt.read(data, None, {"rows": rows}),
        lambda: numpy_sc.apply_parameters(array, {"rows": rows}),
    ):
        try:
            outcomes.append(read().tolist())
        except InvalidParameterError:
            outcomes.append("refused")
    assert outcomes[0] == outcomes[1], outcomes


def test_unknown_parameter() -> None:
    fmt = NpyFormatter()
    with pytest.raises(InvalidParameterError, match=r"'columns'.*supported: 'rows'"):
        fmt.read(fmt.write(np.arange(3)), None, {"columns": ["a"]})


def test_object_arrays_refused() -> None:
    fmt = NpyFormatter()
    with pytest.raises(FormatterError, match="object arrays"):
        fmt.write(np.array([1, "a", None], dtype=object))
    with pytest.raises(FormatterError, match="object arrays"):
        fmt.write(np.zeros(2, dtype=[("a", "i4"), ("b", "O")]))
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    pickled = buffer.getvalue()
    with pytest.raises(FormatterError, match="object arrays"):
        fmt.read(pickled)
    with pytest.raises(FormatterError, match="object arrays"):
        fmt.plan_range(pickled[:4096], {"rows": (0, 1)})


@pytest.mark.parametrize("obj", [[1, 2, 3], 3.0, np.ma.masked_array([1, 2], mask=[False, True])])
def test_write_refuses_non_arrays(obj: Any) -> None:
    with pytest.raises(FormatterError, match=r"numpy\.ndarray"):
        NpyFormatter().write(obj)


def test_invalid_files() -> None:
    fmt = NpyFormatter()
    with pytest.raises(FormatterError, match="bad magic"):
        fmt.read(b"not an npy file at all")
    npz = io.BytesIO()
    np.savez(npz, a=np.arange(3))
    with pytest.raises(FormatterError, match="bad magic"):
        fmt.read(npz.getvalue())
    data = fmt.write(np.arange(100))
    with pytest.raises(FormatterError, match="truncated"):
        fmt.read(data[:20])
    with pytest.raises(FormatterError, match="not a valid"):
        fmt.read(data[:-8])
    bad_version = data[:6] + b"\x09\x00" + data[8:]
    with pytest.raises(FormatterError, match=r"version 9\.0"):
        fmt.read(bad_version)
    code_header = b"\x93NUMPY\x01\x00" + (22).to_bytes(2, "little") + b"__import__('os')      "
    with pytest.raises(FormatterError, match=r"not a valid \.npy header"):
        fmt.read(code_header)


def test_wrong_pytype() -> None:
    fmt = NpyFormatter()
    data = fmt.write(np.arange(4))
    with pytest.raises(FormatterError, match="'list'"):
        fmt.read(data, list)
    with pytest.raises(FormatterError, match="'list'"):
        fmt.read_range(data, data[-16:], {"rows": (-2, None)}, list)


def test_missing_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = NpyFormatter()
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(FormatterError, match=r"pip install s3qbb\[numpy\]"):
        fmt.write([1])
    with pytest.raises(FormatterError, match=r"pip install s3qbb\[numpy\]"):
        fmt.read(b"\x93NUMPY")
