"""Parquet formatter for `pyarrow.Table` objects, with column selection.

pyarrow is imported lazily, on first use.
"""

from __future__ import annotations

__all__ = ["ParquetFormatter"]

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import FormatterError, InvalidParameterError
from .base import Formatter, type_name

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType


def _import_pyarrow() -> tuple[ModuleType, ModuleType]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as err:
        raise FormatterError(
            "The parquet formatter needs pyarrow, which is not installed; "
            "install it with `pip install s3qbb[parquet]`."
        ) from err
    return pyarrow, pyarrow.parquet


def _normalize_columns(columns: Any) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, list | tuple) and all(isinstance(c, str) for c in columns):
        return list(columns)
    raise InvalidParameterError(
        f"parquet read parameter 'columns' must be a list of column names, not {columns!r}."
    )


class ParquetFormatter(Formatter):
    """Read and write `pyarrow.Table` objects as Parquet files.

    Read parameter ``columns`` (a list of column names, or one name) reads
    only those columns, in the order given.
    """

    name: ClassVar[str] = "parquet"
    extension: ClassVar[str] = ".parq"
    copy_by_decoding: ClassVar[bool] = False  # decoding costs more than copying
    parameters: ClassVar[frozenset[str]] = frozenset({"columns"})
    aliases: ClassVar[tuple[str, ...]] = (
        "lsst.daf.butler.formatters.parquet.ParquetFormatter",
        "lsst.daf.butler.formatters.parquetFormatter.ParquetFormatter",
    )

    def write(self, obj: Any) -> bytes:
        """Serialise a table with `pyarrow.parquet.write_table`.

        Parameters
        ----------
        obj : `pyarrow.Table`
            The table.

        Returns
        -------
        data : `bytes`
            The Parquet file.

        Raises
        ------
        FormatterError
            Raised if pyarrow is missing, ``obj`` is not a table, or it cannot be written.
        """
        pa, pq = _import_pyarrow()
        if not isinstance(obj, pa.Table):
            raise FormatterError(
                f"parquet formatter stores pyarrow.Table objects, not {type_name(obj)!r}; convert it first "
                "(e.g. pyarrow.Table.from_pandas or pyarrow.table)."
            )
        sink = pa.BufferOutputStream()
        try:
            pq.write_table(obj, sink)
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise FormatterError(f"parquet formatter cannot write the table: {err}") from err
        return bytes(sink.getvalue().to_pybytes())

    def read(
        self,
        data: bytes | memoryview,
        pytype: type[Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Deserialise a Parquet file into a `pyarrow.Table`.

        Parameters
        ----------
        data : `bytes` or `memoryview`
            The whole Parquet file.
        pytype : `type`, optional
            If a class, the table must be an instance of it (e.g. `pyarrow.Table`).
        parameters : `~collections.abc.Mapping`, optional
            ``columns``: names of the columns to read.

        Returns
        -------
        table : `pyarrow.Table`
            The table, or the selected columns.

        Raises
        ------
        FormatterError
            Raised if pyarrow is missing or the bytes are not a valid Parquet file.
        InvalidParameterError
            Raised if ``columns`` is not a list of names or names a column the file lacks.
        """
        pa, pq = _import_pyarrow()
        self.validate_parameters(parameters)
        columns = (
            _normalize_columns(parameters["columns"]) if parameters and "columns" in parameters else None
        )
        try:
            parquet_file = pq.ParquetFile(pa.BufferReader(data))
            if columns is not None:
                available = parquet_file.schema_arrow.names
                missing = [c for c in columns if c not in available]
                if missing:
                    raise InvalidParameterError(
                        f"parquet read parameter 'columns' names unknown column(s) "
                        f"{', '.join(repr(m) for m in missing)}; available columns: "
                        f"{', '.join(repr(a) for a in available)}."
                    )
            table = parquet_file.read(columns=columns)
        except (pa.ArrowException, OSError) as err:
            raise FormatterError(
                f"parquet formatter: the bytes are not a readable Parquet file: {err}"
            ) from err
        if isinstance(pytype, type) and not isinstance(table, pytype):
            raise FormatterError(
                f"parquet formatter returns pyarrow.Table, but a {type_name(pytype)!r} was requested; "
                "check the storage class of the dataset."
            )
        return table

    def validate_parameters(self, parameters: Mapping[str, Any] | None) -> None:
        """Check the parameter names and the type of ``columns``.

        Parameters
        ----------
        parameters : `~collections.abc.Mapping` or `None`
            Read parameters.

        Raises
        ------
        InvalidParameterError
            Raised if a name other than ``columns`` is given or ``columns`` is not a list of names.
        """
        super().validate_parameters(parameters)
        if parameters and "columns" in parameters:
            _normalize_columns(parameters["columns"])
