"""URIs of dataset artifacts, and the per-dataset URI bundle returned by datastores."""

from __future__ import annotations

__all__ = ["DatasetRefURIs", "ResourceURI"]

from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import quote, unquote, urlsplit

_PATH_SAFE = "/!$&'()*+,;=:@~"
"""Characters left as they are in the path of a URI made by `ResourceURI.for_key` (RFC 3986 ``pchar``)."""


class ResourceURI(str):
    """A URI string with convenient accessors (``mem://...``, ``s3://bucket/key``).

    It *is* a `str`, so it compares, hashes and prints like the URI it spells.
    A fragment of ``predicted`` marks a URI of a dataset not (yet) written.
    Its path is percent-encoded, as in any URI (and in daf_butler's
    ``ResourcePath``): a key holding ``%``, ``#``, ``?`` or a space is written
    ``%25``, ``%23``, ``%3F``, ``%20`` (see `for_key`), and `path` decodes it.

    Examples
    --------
    >>> from s3qbb.core.uri import ResourceURI
    >>> uri = ResourceURI("s3://bucket/run/a.json#predicted")
    >>> (uri.scheme, uri.netloc, uri.path, uri.is_predicted)
    ('s3', 'bucket', 'run/a.json', True)
    >>> uri = ResourceURI.for_key("s3", "bucket", "run/g%2Fr.json")
    >>> uri, uri.path
    (ResourceURI('s3://bucket/run/g%252Fr.json'), 'run/g%2Fr.json')
    """

    __slots__ = ()

    @classmethod
    def for_key(cls, scheme: str, netloc: str, key: str, *, predicted: bool = False) -> ResourceURI:
        """Return the URI of an object key, its path percent-encoded.

        Parameters
        ----------
        scheme : `str`
            URI scheme, e.g. ``"s3"``.
        netloc : `str`
            Network location: the bucket of an ``s3://`` URI.
        key : `str`
            The key, as stored (`path` returns it).
        predicted : `bool`, optional
            Add the ``#predicted`` fragment.
        """
        uri = f"{scheme}://{netloc}/{quote(key, safe=_PATH_SAFE)}"
        return cls(f"{uri}#predicted" if predicted else uri)

    @property
    def scheme(self) -> str:
        """URI scheme, for example ``s3`` or ``mem``."""
        return urlsplit(self).scheme

    @property
    def netloc(self) -> str:
        """Network location: the bucket of an ``s3://`` URI."""
        return urlsplit(self).netloc

    @property
    def path(self) -> str:
        """Path without its leading ``/``, percent-decoded: the key of an ``s3://`` URI."""
        return unquote(urlsplit(self).path.lstrip("/"))

    @property
    def fragment(self) -> str:
        """Fragment after ``#``."""
        return urlsplit(self).fragment

    @property
    def is_predicted(self) -> bool:
        """Whether this URI is a prediction (fragment ``predicted``)."""
        return self.fragment == "predicted"

    def geturl(self) -> str:
        """Return the URI as a plain `str`."""
        return str.__str__(self)

    def key_uri(self) -> str:
        """Return ``scheme://netloc/key`` with the key as stored, not percent-encoded.

        The form ``aws s3``, s3qbb's messages and its command line's output use,
        and which s3qbb's commands read first (`s3qbb.s3.config_files.read_s3_bytes`).
        """
        return f"{self.scheme}://{self.netloc}/{self.path}"

    def unpredicted(self) -> ResourceURI:
        """Return the URI without its ``#predicted`` fragment."""
        return ResourceURI(self.removesuffix("#predicted"))

    def __repr__(self) -> str:
        return f"ResourceURI({str.__repr__(self)})"


class DatasetRefURIs(tuple[ResourceURI | None, Mapping[str, ResourceURI]]):
    """The primary URI of a dataset and the URIs of its separately stored components.

    Parameters
    ----------
    primaryURI : `ResourceURI`, optional
        URI of the single artifact, or `None` if the dataset is stored as components.
    componentURIs : `~collections.abc.Mapping` [`str`, `ResourceURI`], optional
        URIs of separately stored components.
    """

    def __new__(
        cls, primaryURI: ResourceURI | None = None, componentURIs: Mapping[str, ResourceURI] | None = None
    ) -> DatasetRefURIs:
        """Make the pair of primary and component URIs."""
        return super().__new__(cls, (primaryURI, MappingProxyType(dict(componentURIs or {}))))

    @property
    def primaryURI(self) -> ResourceURI | None:
        """URI of the single artifact, or `None`."""
        return self[0]

    @property
    def componentURIs(self) -> Mapping[str, ResourceURI]:
        """URIs of separately stored components."""
        return self[1]

    def __reduce__(self) -> tuple[type[DatasetRefURIs], tuple[ResourceURI | None, dict[str, ResourceURI]]]:
        return (DatasetRefURIs, (self.primaryURI, dict(self.componentURIs)))

    def __repr__(self) -> str:
        return f"DatasetRefURIs({self.primaryURI!r}, {dict(self.componentURIs)!r})"
