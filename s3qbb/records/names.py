"""Names and constants of the records database (no SQLAlchemy: importing this is cheap)."""

from __future__ import annotations

__all__ = [
    "DATASET_LOCATION_TABLE",
    "DATASET_LOCATION_TRASH_TABLE",
    "DEFAULT_RECORDS_TABLE",
    "META_TABLE",
    "OPAQUE_META_TABLE",
    "RECORDS_SCHEMA_VERSION",
    "check_records_table_name",
]

import re

from ..errors import ConfigError

RECORDS_SCHEMA_VERSION = "1"
"""Version of this schema, stored under ``records_schema_version`` in ``s3qbb_meta``."""

DEFAULT_RECORDS_TABLE = "file_datastore_records"
"""Default name of the records table (daf_butler's default)."""

DATASET_LOCATION_TABLE = "dataset_location"
DATASET_LOCATION_TRASH_TABLE = "dataset_location_trash"
OPAQUE_META_TABLE = "opaque_meta"
META_TABLE = "s3qbb_meta"

_TABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = frozenset({DATASET_LOCATION_TABLE, DATASET_LOCATION_TRASH_TABLE, OPAQUE_META_TABLE, META_TABLE})


def check_records_table_name(name: str) -> str:
    """Check that a records table name is an identifier not used by the schema.

    Parameters
    ----------
    name : `str`
        Proposed records table name.

    Returns
    -------
    name : `str`
        The name, unchanged.

    Raises
    ------
    ConfigError
        Raised if the name is not allowed.
    """
    if _TABLE_NAME_RE.fullmatch(name) is None or name in _RESERVED:
        raise ConfigError(
            f"Records table name {name!r} is not allowed: use an identifier matching "
            f"[A-Za-z_][A-Za-z0-9_]* other than {sorted(_RESERVED)}."
        )
    return name
