"""Dataset identifiers: UUIDs, random or derived deterministically from a dataset's identity."""

from __future__ import annotations

__all__ = ["DatasetId", "DatasetIdFactory", "DatasetIdGenEnum"]

import enum
import json
import uuid
from typing import TYPE_CHECKING

from ..errors import DataIdError

if TYPE_CHECKING:
    from .dataset_type import DatasetType
    from .dimensions import DataCoordinate

DatasetId = uuid.UUID
"""Type of dataset identifiers: a UUID."""


class DatasetIdGenEnum(enum.Enum):
    """How a `DatasetIdFactory` makes a new dataset ID."""

    UNIQUE = 0
    """A random UUID4: unique whatever the dataset."""

    DATAID_TYPE = 1
    """UUID5 of the dataset type and data ID: the same in every run."""

    DATAID_TYPE_RUN = 2
    """UUID5 of the dataset type, data ID and run: the same on every attempt of a run."""


class DatasetIdFactory:
    """Make dataset IDs, randomly or deterministically.

    Parameters
    ----------
    namespace : `uuid.UUID`, optional
        Namespace of the deterministic (UUID5) modes. Two factories with the
        same namespace make the same IDs for the same inputs.

    Examples
    --------
    >>> from s3qbb.core.ids import DatasetIdFactory
    >>> factory = DatasetIdFactory()
    >>> factory.makeDatasetId("run", None, None).version
    4
    """

    NS_UUID: uuid.UUID = uuid.UUID("4c71d3fb-7ba1-4b46-b4ff-1bd8c0e4bd53")
    """Default namespace of deterministic IDs."""

    def __init__(self, namespace: uuid.UUID | None = None) -> None:
        self._namespace = namespace if namespace is not None else self.NS_UUID

    def makeDatasetId(
        self,
        run: str,
        datasetType: DatasetType | None,
        dataId: DataCoordinate | None,
        idGenerationMode: DatasetIdGenEnum = DatasetIdGenEnum.UNIQUE,
    ) -> DatasetId:
        """Return a new dataset ID.

        Parameters
        ----------
        run : `str`
            Run collection the dataset belongs to.
        datasetType : `DatasetType` or `None`
            Dataset type; required by the deterministic modes.
        dataId : `DataCoordinate` or `None`
            Data ID; required by the deterministic modes.
        idGenerationMode : `DatasetIdGenEnum`, optional
            Random (default) or one of the deterministic modes.

        Returns
        -------
        id : `uuid.UUID`
            The new dataset ID.

        Raises
        ------
        DataIdError
            If a deterministic mode is asked for without a dataset type and data ID.
        """
        if idGenerationMode is DatasetIdGenEnum.UNIQUE:
            return uuid.uuid4()
        if datasetType is None or dataId is None:
            raise DataIdError(
                f"Deterministic dataset ID mode {idGenerationMode.name} needs a dataset type and a data ID; "
                "pass both or use DatasetIdGenEnum.UNIQUE."
            )
        items = [("dataset_type", datasetType.name)]
        items.extend((k, str(v)) for k, v in sorted(dataId.required.items()))
        if idGenerationMode is DatasetIdGenEnum.DATAID_TYPE_RUN:
            items.append(("run", run))
        # JSON keeps the encoding unambiguous whatever characters the values hold.
        return uuid.uuid5(self._namespace, json.dumps(items, separators=(",", ":")))
