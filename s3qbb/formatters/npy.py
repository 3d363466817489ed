"""NumPy ``.npy`` formatter, with row-range reads that fetch only the bytes needed.

numpy is imported lazily, on first use.
"""

from __future__ import annotations

__all__ = ["NpyFormatter", "NpyHeader", "normalize_rows", "parse_npy_header"]

import ast
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.rows import normalize_rows
from ..errors import FormatterError, InvalidParameterError
from .base import Formatter, type_name

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType

_MAGIC = b"\x93NUMPY"
# Bytes of the length field after the 6-byte magic and 2-byte version, and the
# header text encoding, by major format version.
_VERSIONS: dict[int, tuple[int, str]] = {1: (2, "latin1"), 2: (4, "latin1"), 3: (4, "utf8")}
_HEADER_KEYS = frozenset({"descr", "fortran_order", "shape"})

MAX_HEADER_SIZE = 1_000_000
"""Largest npy header text we parse (numpy's own default, 10,000, refuses wide structured dtypes)."""


def _import_numpy() -> ModuleType:
    try:
        import numpy
    except ImportError as err:
        raise FormatterError(
            "The npy formatter needs numpy, which is not installed; "
            "install it with `pip install s3qbb[numpy]`."
        ) from err
    return numpy


@dataclass(frozen=True)
class NpyHeader:
    """The parsed header of an ``.npy`` file."""

    version: tuple[int, int]
    """Format version ``(major, minor)``."""

    data_offset: int
    """Offset of the first array byte (the header length, padding included)."""

    dtype: Any
    """The array's `numpy.dtype`."""

    fortran_order: bool
    """Whether the data is stored in Fortran (column-major) order."""

    shape: tuple[int, ...]
    """The array's shape."""

    @property
    def row_nbytes(self) -> int:
        """Bytes per row along axis 0 (C order)."""
        return int(self.dtype.itemsize) * math.prod(self.shape[1:])


def parse_npy_header(header: bytes | memoryview) -> NpyHeader | None:
    """Parse the header of an ``.npy`` file (format versions 1, 2 and 3).

    Parameters
    ----------
    header : `bytes` or `memoryview`
        The leading bytes of the file (more is fine).

    Returns
    -------
    parsed : `NpyHeader` or `None`
        The header, or `None` if ``header`` is too short to hold all of it.

    Raises
    ------
    FormatterError
        Raised if the bytes are not an npy header, or describe an object array.
    """
    np = _import_numpy()
    head = bytes(header[:12])
    if head[: len(_MAGIC)] != _MAGIC[: len(head)]:
        raise FormatterError("npy formatter: the bytes are not an .npy file (bad magic string).")
    if len(head) < 8:
        return None
    major, minor = head[6], head[7]
    if major not in _VERSIONS:
        raise FormatterError(
            f"npy formatter: unsupported .npy format version {major}.{minor}; "
            "upgrade s3qbb or rewrite the file."
        )
    len_size, encoding = _VERSIONS[major]
    if len(head) < 8 + len_size:
        return None
    text_len = int.from_bytes(head[8 : 8 + len_size], "little")
    if text_len > MAX_HEADER_SIZE:
        raise FormatterError(f"npy formatter: the header is {text_len} bytes long, over {MAX_HEADER_SIZE}.")
    data_offset = 8 + len_size + text_len
    if len(header) < data_offset:
        return None
    try:
        text = bytes(header[8 + len_size : data_offset]).decode(encoding)
        fields = ast.literal_eval(text)  # literals only: never evaluates code
    except (UnicodeDecodeError, SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as err:
        raise FormatterError(f"npy formatter: the header is not a valid .npy header: {err}") from err
    if not isinstance(fields, dict) or set(fields) != _HEADER_KEYS:
        raise FormatterError(f"npy formatter: the header must hold exactly the keys {sorted(_HEADER_KEYS)}.")
    shape, fortran_order = fields["shape"], fields["fortran_order"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise FormatterError(f"npy formatter: bad shape {shape!r} in the header.")
    if not isinstance(fortran_order, bool):
        raise FormatterError(f"npy formatter: bad fortran_order {fortran_order!r} in the header.")
    try:
        dtype = np.lib.format.descr_to_dtype(fields["descr"])
    except (TypeError, ValueError) as err:
        raise FormatterError(f"npy formatter: bad dtype {fields['descr']!r} in the header: {err}") from err
    if dtype.hasobject:
        raise FormatterError(
            f"npy formatter refuses object arrays (dtype {dtype}): loading them would unpickle stored "
            "data, which can run code. Store a fixed-width dtype instead."
        )
    return NpyHeader((major, minor), data_offset, dtype, fortran_order, shape)


@dataclass(frozen=True)
class _RowPlan:
    header: NpyHeader
    selected: range  # normalised row indices
    start: int  # byte offsets of the ranged read, stop exclusive
    stop: int


class NpyFormatter(Formatter):
    """Read and write single NumPy arrays as ``.npy`` files, never pickling.

    Read parameter ``rows`` selects rows along axis 0, like ``array[rows]``.
    Implements `RangeReadable`: for C-order arrays only the bytes of the
    selected rows need to be fetched.
    """

    name: ClassVar[str] = "npy"
    extension: ClassVar[str] = ".npy"
    copy_by_decoding: ClassVar[bool] = False  # decoding costs more than copying
    parameters: ClassVar[frozenset[str]] = frozenset({"rows"})

    header_nbytes: int = 4096
    """Leading bytes fetched to plan a ranged read (enough for all but very wide structured dtypes)."""

    def write(self, obj: Any) -> bytes:
        """Serialise an array with `numpy.save` (``allow_pickle=False``).

        Parameters
        ----------
        obj : `numpy.ndarray`
            The array; object arrays are refused.

        Returns
        -------
        data : `bytes`
            The ``.npy`` file.

        Raises
        ------
        FormatterError
            Raised if numpy is missing, ``obj`` is not an array, or it holds Python objects.
        """
        np = _import_numpy()
        if not isinstance(obj, np.ndarray) or isinstance(obj, np.ma.MaskedArray):
            raise FormatterError(
                f"npy formatter stores numpy.ndarray objects, not {type_name(obj)!r}; convert it with "
                "numpy.asarray first (masked arrays lose their mask: store data and mask separately)."
            )
        if obj.dtype.hasobject:
            raise FormatterError(
                f"npy formatter refuses object arrays (dtype {obj.dtype}): they can only be stored by "
                "pickling. Convert to a fixed-width dtype (e.g. 'U' strings) or use another formatter."
            )
        buffer = io.BytesIO()
        try:
            np.save(buffer, obj, allow_pickle=False)
        except (ValueError, TypeError) as err:
            raise FormatterError(f"npy formatter cannot save array of dtype {obj.dtype}: {err}") from err
        return buffer.getvalue()

    def read(
        self,
        data: bytes | memoryview,
        pytype: type[Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Deserialise an ``.npy`` file with `numpy.load` (``allow_pickle=False``).

        Parameters
        ----------
        data : `bytes` or `memoryview`
            The whole ``.npy`` file.
        pytype : `type`, optional
            If a class, the array must be an instance of it (e.g. `numpy.ndarray`).
        parameters : `~collections.abc.Mapping`, optional
            ``rows``: a `slice` (any step but zero) or ``(start, stop)`` over axis 0.

        Returns
        -------
        array : `numpy.ndarray`
            The array, or a copy of the selected rows.

        Raises
        ------
        FormatterError
            Raised if numpy is missing or the bytes are not a valid, pickle-free ``.npy`` file.
        InvalidParameterError
            Raised if ``rows`` is invalid or the array has no axis 0.
        """
        np = _import_numpy()
        self.validate_parameters(parameters)
        rows = normalize_rows(parameters["rows"]) if parameters and "rows" in parameters else None
        header = parse_npy_header(data)
        if header is None:
            raise FormatterError("npy formatter: the file is truncated inside its header.")
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False, max_header_size=MAX_HEADER_SIZE)
        except (ValueError, OSError, EOFError) as err:
            raise FormatterError(f"npy formatter: the bytes are not a valid .npy file: {err}") from err
        if rows is not None:
            self._check_has_rows(header)
            array = array[rows].copy()
        return self._check_pytype(array, pytype)

    def validate_parameters(self, parameters: Mapping[str, Any] | None) -> None:
        """Check the parameter names and the ``rows`` value.

        Parameters
        ----------
        parameters : `~collections.abc.Mapping` or `None`
            Read parameters.

        Raises
        ------
        InvalidParameterError
            Raised if a name other than ``rows`` is given or ``rows`` is invalid.
        """
        super().validate_parameters(parameters)
        if parameters and "rows" in parameters:
            normalize_rows(parameters["rows"])

    # --- RangeReadable ----------------------------------------------------

    def plan_range(self, header: bytes, parameters: Mapping[str, Any]) -> tuple[int, int] | None:
        """Return the byte range holding the rows selected by ``rows``.

        Parameters
        ----------
        header : `bytes`
            The leading bytes of the file (up to `header_nbytes`).
        parameters : `~collections.abc.Mapping`
            Read parameters.

        Returns
        -------
        span : `tuple` [`int`, `int`] or `None`
            ``(start, stop)`` byte offsets, stop exclusive and never equal to
            start (when no rows are selected the span is the header's final
            byte, so no empty HTTP range is ever requested). `None` when no
            ``rows`` are given, the header is longer than ``header``, or the
            array is in Fortran order: read the whole file then.

        Raises
        ------
        FormatterError
            Raised if the header is invalid or describes an object array.
        InvalidParameterError
            Raised if ``rows`` is invalid or the array has no axis 0.
        """
        plan = self._plan(header, parameters)
        return None if plan is None else (plan.start, plan.stop)

    def read_range(
        self,
        header: bytes,
        data: bytes,
        parameters: Mapping[str, Any],
        pytype: type[Any] | None,
    ) -> Any:
        """Build the selected rows from the header and the planned byte range.

        Parameters
        ----------
        header : `bytes`
            The bytes given to `plan_range`.
        data : `bytes`
            The bytes ``[start, stop)`` of the file, for the span `plan_range` returned.
        parameters : `~collections.abc.Mapping`
            The parameters given to `plan_range`.
        pytype : `type` or `None`
            If a class, the array must be an instance of it.

        Returns
        -------
        array : `numpy.ndarray`
            A new (writable) array equal to ``full[rows]``.

        Raises
        ------
        FormatterError
            Raised if no range read was possible for these arguments or
            ``data`` does not have the planned length.
        """
        np = _import_numpy()
        plan = self._plan(header, parameters)
        if plan is None:
            raise FormatterError(
                "npy formatter: no ranged read is possible for these parameters (plan_range returned None); "
                "read the whole file with read()."
            )
        if len(data) != plan.stop - plan.start:
            raise FormatterError(
                f"npy formatter: expected {plan.stop - plan.start} bytes for bytes "
                f"{plan.start}-{plan.stop - 1} of the file, got {len(data)}; "
                "the object may have changed or the range request failed."
            )
        hdr, selected = plan.header, plan.selected
        tail = hdr.shape[1:]
        if len(selected) == 0 or hdr.row_nbytes == 0:
            array = np.empty((len(selected), *tail), dtype=hdr.dtype)
        else:
            # The range covers rows lo..hi; a negative step walks it from its end.
            lo, hi = min(selected[0], selected[-1]), max(selected[0], selected[-1])
            flat = np.frombuffer(data, dtype=hdr.dtype, count=(hi - lo + 1) * math.prod(tail))
            rows = flat.reshape((hi - lo + 1, *tail))
            array = rows[selected[0] - lo :: selected.step][: len(selected)].copy()
        return self._check_pytype(array, pytype)

    # --- helpers ----------------------------------------------------------

    def _plan(self, header: bytes, parameters: Mapping[str, Any]) -> _RowPlan | None:
        self.validate_parameters(parameters)
        if "rows" not in parameters:
            return None
        rows = normalize_rows(parameters["rows"])
        parsed = parse_npy_header(header)
        if parsed is None:
            return None
        self._check_has_rows(parsed)
        if parsed.fortran_order:
            return None
        selected = range(*rows.indices(parsed.shape[0]))
        if len(selected) == 0 or parsed.row_nbytes == 0:
            return _RowPlan(parsed, selected, parsed.data_offset - 1, parsed.data_offset)
        lo, hi = min(selected[0], selected[-1]), max(selected[0], selected[-1])
        start = parsed.data_offset + lo * parsed.row_nbytes
        stop = parsed.data_offset + (hi + 1) * parsed.row_nbytes
        return _RowPlan(parsed, selected, start, stop)

    @staticmethod
    def _check_has_rows(header: NpyHeader) -> None:
        if not header.shape:
            raise InvalidParameterError(
                "npy read parameter 'rows' needs an array with at least one dimension; "
                "this dataset is a 0-d array: read it without 'rows'."
            )

    @staticmethod
    def _check_pytype(array: Any, pytype: type[Any] | None) -> Any:
        if isinstance(pytype, type) and not isinstance(array, pytype):
            raise FormatterError(
                f"npy formatter returns numpy.ndarray, but a {type_name(pytype)!r} was requested; "
                "check the storage class of the dataset."
            )
        return array
