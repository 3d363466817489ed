"""Verified reads of stored datasets: whole objects, or whole checksum blocks around a byte range.

Every byte a read returns has been checked against a checksum its record
authenticates. A whole read checks the full-object checksum. A partial read
(`RangeReadable` formatters, e.g. NumPy rows) widens its ranges to whole
blocks and checks each block against the object's CRC32C list, which comes
with the GET response in the object metadata and is trusted only if its digest
matches the record (see `s3qbb.s3.checksums`). A read that fails a check is
read once more from the server, since bits flipped in transit do not come back
twice; a second failure raises `~s3qbb.errors.DatasetIntegrityError`. An
object that another s3qbb write replaced since its record was made (its
metadata names another checksum, or it is a multipart upload's placeholder:
a ``--rerun`` of the producing quantum) is not damaged: the read raises
`~s3qbb.errors.DatasetReplacedError` at once, naming the write that replaced
it, and returns none of its bytes.

The checksums are computed while the body downloads: each GET asks its
transport for a `~s3qbb.s3.checksums.Digest` (the full-object checksum, or
the CRC32C of each block), fed every chunk as it arrives, so only the
comparison is left when the last byte lands. A result without one (a
transport that does not make it) is checksummed after the download.

Requests: a whole read is one GET; a partial read is one GET for the leading
blocks (the formatter's header) plus one for the blocks of the range, unless
the range lies in the leading blocks; an object without a block list (at most
one block, or written before block lists existed) is read whole: one GET. An
object whose metadata lost the block list its record references (a copy tool
that drops metadata) is read whole too, after the GET of its leading blocks,
and checked against the recorded full-object checksum.
"""

from __future__ import annotations

__all__ = ["ReadTarget", "VerifiedReader"]

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.attempt import WriteToken
from ..errors import DatasetIntegrityError, DatasetNotFoundError, DatasetReplacedError, FormatterError
from ..formatters import RangeReadable
from ..s3 import checksums
from ..s3.errors import S3ServiceError
from ..s3.objects import WRITE_CHECKSUM, WRITE_TOKEN
from ..s3.ownership import WRITE_DATASET, WRITE_PENDING, object_metadata, other_dataset
from .encoding import Encoded

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..core.dataset_ref import DatasetRef
    from ..core.records import StoredFileInfo
    from ..formatters import Formatter
    from ..retry import RetryStats
    from ..s3.objects import GetResult, S3Bucket
    from .base import DatastoreStats, ReadPlan

_LOG = logging.getLogger(__name__)

_KIND = "ChecksumMismatch"
_RANGE_NOT_SATISFIABLE = 416
_WHAT_TO_DO = (
    "Restore the object from a copy, or delete it and re-run the quantum that produced it, then ingest "
    "its records again."
)


@dataclass(frozen=True, slots=True)
class ReadTarget:
    """The dataset a read is for: its ref, record, object key and bucket (for checks and messages)."""

    ref: DatasetRef
    info: StoredFileInfo
    key: str
    bucket: str
    datastore: str = ""
    """Name of the datastore reading (for messages)."""
    predicted: bool = False
    """Whether ``info`` is the record a put would write (trust mode), not one of a write."""

    @property
    def uri(self) -> str:
        """``s3://bucket/key`` of the object, the key as it is (for messages; formatted when needed)."""
        return f"s3://{self.bucket}/{self.key}"

    @property
    def recorded(self) -> checksums.Checksum | None:
        """The checksum of the record, or `None` if it has none."""
        if not self.info.checksum:
            return None
        try:
            return checksums.parse(self.info.checksum)
        except ValueError as err:
            raise DatasetIntegrityError(
                f"Dataset {self.ref} at {self.uri} has a malformed recorded checksum: {err} "
                "Re-ingest its records from the producing quantum."
            ) from err

    def fail(self, problem: str) -> DatasetIntegrityError:
        """Return the error for a failed check."""
        return DatasetIntegrityError(f"Dataset {self.ref} at {self.uri}: {problem}")

    def missing(self) -> DatasetNotFoundError:
        """Return the error for an object that does not exist: which dataset, where, and what to do."""
        if self.predicted:
            return DatasetNotFoundError(
                f"Dataset {self.ref} has no record in datastore {self.datastore!r} and no object at its "
                f"predicted location {self.uri} (trust mode). Check that the quantum producing it ran and "
                "wrote it, and that its records were imported."
            )
        return DatasetNotFoundError(
            f"Dataset {self.ref} is recorded by datastore {self.datastore!r} at {self.uri}, but the object "
            "does not exist: it was deleted, or the write that made it never finished. Re-run the quantum "
            "that produced it; if the dataset is gone for good, forget its record (Datastore.forget)."
        )


class VerifiedReader:
    """Read datasets from a bucket, verifying every byte returned and re-reading once on a failure.

    Parameters
    ----------
    bucket : `s3qbb.s3.objects.S3Bucket`
        The object layer.
    stats : `DatastoreStats`
        Counters of the datastore (bytes read).
    retry_stats : `s3qbb.retry.RetryStats`
        Counters of the datastore's retry policy: a re-read after a failed
        check counts as one retry, and its failure by kind ``ChecksumMismatch``.
    """

    def __init__(self, bucket: S3Bucket, stats: DatastoreStats, retry_stats: RetryStats) -> None:
        self.bucket = bucket
        self.stats = stats
        self.retry_stats = retry_stats

    # ------------------------------------------------------------------ reads

    def read_dataset(
        self,
        asked: DatasetRef,
        target: ReadTarget,
        formatter: Formatter,
        plan: ReadPlan,
        finish: Callable[[ReadPlan, Any, bool], Any],
    ) -> tuple[Any, Encoded | None]:
        """Read and decode what ``plan`` (for ref ``asked``) asks for; with the bytes when read whole.

        Read parameters the formatter applies while decoding are passed to it
        (with ranged GETs for a `RangeReadable` formatter); ``finish`` (the
        datastore's ``_finish_read``) applies the others, extracts the
        component and converts to the requested storage class.

        Raises
        ------
        DatasetNotFoundError
            If the object is missing.
        DatasetIntegrityError
            If the bytes fail their checks twice.
        FormatterError
            If the bytes cannot be decoded.
        """
        params = dict(plan.parameters) if plan.component is None and plan.parameters else {}
        by_formatter = bool(params) and set(params) <= formatter.parameters
        pytype = plan.stored.pytype

        def read_whole(body: bytes) -> Any:
            return formatter.read(body, pytype, params if by_formatter else None)

        body: bytes | None = None
        try:
            if by_formatter and isinstance(formatter, RangeReadable):
                obj = self.read_range(target, formatter, params, read_whole, pytype)
            else:
                body = self.read_whole(target)
                obj = read_whole(body)
        except (DatasetIntegrityError, FormatterError) as err:  # a missing object's error names both already
            err.add_note(f"While reading dataset {asked} from {target.uri}.")
            raise
        result = finish(plan, obj, by_formatter)
        if body is None or plan.component is not None or plan.parameters:
            return result, None
        coerce = plan.target.coerce_type

        def decode(data: bytes) -> Any:  # what this read returned, for the same bytes
            return coerce(formatter.read(data, pytype))

        return result, Encoded(body, decode, formatter.copy_by_decoding)

    def read_whole(self, target: ReadTarget) -> bytes:
        """Read a whole object and verify its size and full-object checksum (one GET, two on a failure).

        Without a recorded checksum (trust mode) the checksum the server
        returns, else the one s3qbb wrote into the object metadata, is checked.

        Raises
        ------
        DatasetIntegrityError
            If the bytes fail their check twice.
        DatasetNotFoundError
            If the object does not exist.
        """
        recorded = target.recorded
        algorithm = recorded.algorithm if recorded is not None else self.bucket.config.checksum_algorithm

        def check(result: GetResult) -> None:
            self._check_size(target, result)
            expected = recorded or result.server_checksum or _metadata_checksum(result.metadata)
            if expected is None:
                return
            actual = _full_checksum(result, expected.algorithm)
            if not actual.same_value(expected):
                raise target.fail(
                    f"the object fails its {expected.algorithm} checksum (expected {expected.value}, "
                    f"read {actual.value})."
                )

        running = functools.partial(checksums.RunningChecksum, algorithm)
        return self._get_verified(target, None, check, running).body

    def read_range(
        self,
        target: ReadTarget,
        formatter: RangeReadable,
        parameters: Mapping[str, Any],
        read_whole: Callable[[bytes], Any],
        pytype: type[Any] | None,
    ) -> Any:
        """Read what ``parameters`` select through a `RangeReadable` formatter, verifying whole blocks.

        Parameters
        ----------
        target : `ReadTarget`
            The dataset.
        formatter : `RangeReadable`
            Its formatter.
        parameters : `~collections.abc.Mapping`
            Read parameters the formatter serves.
        read_whole : `~collections.abc.Callable` [[`bytes`], `typing.Any`]
            Builds the result from the whole object, when no ranged read is possible.
        pytype : `type` or `None`
            Python type asked for.

        Returns
        -------
        obj : `typing.Any`
            What ``formatter.read_range`` built.

        Raises
        ------
        DatasetIntegrityError
            If a block, the block list or the object size fails its check twice.
        """
        recorded = target.recorded
        size = target.info.file_size
        if recorded is None or recorded.block_size is None or size < 0:
            return read_whole(self.read_whole(target))
        block_size = recorded.block_size
        running = functools.partial(checksums.RunningBlocks, block_size)
        head_stop = min(size, -(-max(formatter.header_nbytes, 1) // block_size) * block_size)
        found: list[checksums.BlockChecksums] = []

        def check_head(result: GetResult) -> None:
            self._check_size(target, result)
            if checksums.BLOCKS_METADATA not in result.metadata:
                raise _BlockListMissingError
            found[:] = [self._trusted_blocks(target, recorded, result)]
            self._check_blocks(target, found[0], 0, result)

        try:
            head = self._get_verified(target, (0, head_stop), check_head, running).body
        except _BlockListMissingError:
            # Intact bytes whose metadata lost the block list (a copy tool that drops metadata) are
            # still checked whole against the recorded full-object checksum: one more GET.
            _LOG.warning(
                "Dataset %s at %s: the object metadata has no %r block checksum list although its record "
                "references one; reading the object whole to check it against its recorded checksum.",
                target.ref,
                target.uri,
                checksums.BLOCKS_METADATA,
            )
            return read_whole(self.read_whole(target))
        blocks = found[0]
        span = formatter.plan_range(head, parameters)
        if span is None:
            return read_whole(head if head_stop == size else self.read_whole(target))
        start, stop = span
        first, last = blocks.span(start, stop, size)
        if last <= head_stop:
            return formatter.read_range(head, head[start:stop], parameters, pytype)
        offset = max(first, head_stop)

        def check_rest(result: GetResult) -> None:
            self._check_size(target, result)
            self._check_blocks(target, blocks, offset, result)

        rest = self._get_verified(target, (offset, last), check_rest, running).body
        covered = head[first:] + rest if first < head_stop else rest
        data = covered[start - first : stop - first]
        return formatter.read_range(head, data, parameters, pytype)

    # ------------------------------------------------------------------ checks

    def _get_verified(
        self,
        target: ReadTarget,
        byte_range: tuple[int, int] | None,
        check: Callable[[GetResult], None],
        digest: Callable[[], checksums.Digest],
    ) -> GetResult:
        """GET (a range of) the object and check it; on a failed check, GET and check once more.

        Each GET feeds a fresh ``digest()`` as its body arrives (`GetResult.digest`), for ``check``.
        """
        result = self._get(target, byte_range, digest)
        try:
            check(result)
        except DatasetIntegrityError as err:
            if (replaced := _replacement(target, result.metadata)) is not None:
                raise replaced from err  # another write's complete object: reading again cannot help
            _LOG.warning(
                "%s Reading it again from the server (a bit flipped in transit does not repeat).", err
            )
            self.retry_stats.record_transient(_KIND, gave_up=False)
        else:
            return result
        self.retry_stats.record_attempt(is_retry=True)
        result = self._get(target, byte_range, digest)
        try:
            check(result)
        except DatasetIntegrityError as err:
            self.retry_stats.record_transient(_KIND, gave_up=True)
            err.add_note(
                "The check failed again on a fresh read from the server: the stored object is damaged. "
                + _WHAT_TO_DO
            )
            raise
        return result

    def _get(
        self, target: ReadTarget, byte_range: tuple[int, int] | None, digest: Callable[[], checksums.Digest]
    ) -> GetResult:
        """GET (a range of) the object: a missing one is named as the dataset whose record says it exists."""
        try:
            result = self.bucket.get(target.key, byte_range, digest=digest)
        except DatasetNotFoundError as err:  # the S3 error (NoSuchKey, endpoint) stays as the cause
            raise target.missing() from err
        except S3ServiceError as err:
            if err.status != _RANGE_NOT_SATISFIABLE or byte_range is None:
                raise
            # A range within the recorded size that the server cannot satisfy: the object is shorter.
            # Replaced by a rerun (its placeholder, or fewer bytes) or truncated: its metadata says which
            # (one HEAD, on this failure only).
            if (replaced := self._replaced_since(target)) is not None:
                raise replaced from err
            failure = target.fail(
                f"bytes {byte_range[0]}-{byte_range[1] - 1} cannot be read (HTTP 416): the object is "
                f"shorter than the {target.info.file_size} bytes recorded; it was truncated or replaced."
            )
            failure.add_note(_WHAT_TO_DO)
            raise failure from err
        self.stats.add_read(len(result.body))
        _refuse_placeholder(target, result)
        if target.predicted:
            _refuse_other_dataset(target, result)
        return result

    def _replaced_since(self, target: ReadTarget) -> DatasetReplacedError | None:
        """Return the error of a recorded object that another write replaced, from its HEAD (else `None`)."""
        head = self.bucket.head(target.key)  # HEAD needs what GET needs: a refusal is the read's own
        return None if head is None else _replacement(target, head.metadata)

    @staticmethod
    def _check_size(target: ReadTarget, result: GetResult) -> None:
        recorded = target.info.file_size
        if recorded >= 0 and result.size != recorded:
            raise target.fail(
                f"the object has {result.size} bytes but {recorded} were recorded: it was modified, "
                "replaced or truncated."
            )

    @staticmethod
    def _trusted_blocks(
        target: ReadTarget, recorded: checksums.Checksum, result: GetResult
    ) -> checksums.BlockChecksums:
        text = result.metadata[checksums.BLOCKS_METADATA]  # present: `read_range` checked
        try:
            blocks = checksums.BlockChecksums.from_metadata(text)
        except ValueError as err:
            raise target.fail(f"the object's block checksum list is unreadable: {err}") from err
        if not recorded.trusts(blocks) or not blocks.covers(target.info.file_size):
            raise target.fail(
                f"the block checksum list in the object metadata ({checksums.BLOCKS_METADATA!r}) does not "
                f"match its record ({blocks.reference()} read, {recorded.blocks} recorded): the metadata "
                "was altered or the object replaced."
            )
        return blocks

    @staticmethod
    def _check_blocks(
        target: ReadTarget, blocks: checksums.BlockChecksums, offset: int, result: GetResult
    ) -> None:
        fed = result.digest
        if (
            isinstance(fed, checksums.RunningBlocks)
            and fed.block_size == blocks.block_size
            and fed.nbytes == len(result.body)
        ):
            bad = blocks.first_mismatch(offset, fed.crcs())  # computed as the body arrived
        else:
            bad = blocks.first_bad_block(offset, result.body)
        if bad is not None:
            lo = bad * blocks.block_size
            hi = min(lo + blocks.block_size, target.info.file_size)
            raise target.fail(
                f"block {bad} (bytes {lo}-{hi - 1}, {blocks.block_size}-byte blocks) fails its CRC32C "
                "checksum: the bytes read are not the bytes written."
            )


class _BlockListMissingError(Exception):  # a signal inside `read_range`, never raised out of it
    """The object metadata has no block checksum list: the partial read falls back to a whole one."""


def _refuse_placeholder(target: ReadTarget, result: GetResult) -> None:
    """Raise `DatasetNotFoundError` if the object is a multipart upload's placeholder, not a dataset.

    A recorded dataset's placeholder is `DatasetReplacedError`: another write is replacing it.
    """
    if object_metadata(result.metadata).get(WRITE_PENDING) == "1":
        if (replaced := _replacement(target, result.metadata)) is not None:
            raise replaced
        raise DatasetNotFoundError(
            f"Dataset {target.ref} is not stored yet: {target.uri} is the placeholder of a multipart "
            f"upload ({WRITE_PENDING}) that is still running or whose writer died. Wait for the "
            "producing quantum to finish, or re-run it."
        )


def _replacement(target: ReadTarget, stored: Mapping[str, str]) -> DatasetReplacedError | None:
    """Return the error of a recorded object that another s3qbb write replaced, if its metadata shows one.

    The object is replaced, not damaged, if it carries a write token, names no other
    dataset (`WRITE_DATASET`: a copy tool keeps another object's metadata), and either
    is a multipart upload's placeholder (a write over it is running) or names
    in its metadata a checksum other than the record's (the bytes of another
    write). Bytes that fail the record's checksum under the metadata of the
    recorded write are damaged: `None`.
    """
    recorded = target.recorded
    if target.predicted or recorded is None:
        return None
    metadata = object_metadata(stored)
    token = WriteToken.parse(metadata.get(WRITE_TOKEN))
    if token is None:
        return None  # not written by s3qbb: no other attempt to name
    if other_dataset(metadata, target.ref.id) is not None:
        return None  # another dataset's object copied here (metadata kept): no attempt of its producer
    if metadata.get(WRITE_PENDING) == "1":
        state = "is being replaced: it is now the placeholder of a multipart upload"
    else:
        written = _metadata_checksum(metadata)
        if written is None or written.same_value(recorded):
            return None
        state = (
            f"was replaced: it now holds other bytes ({written.algorithm} {written.value}; the record "
            f"says {recorded.value})"
        )
    return DatasetReplacedError(
        f"Dataset {target.ref} at {target.uri} {state}, written by attempt {token.attempt_id} of quantum "
        f"{token.quantum_id} after the record this read uses was made. Another attempt of the quantum "
        "that produced it (a --rerun) replaced it, so this quantum stops rather than read inputs of two "
        "attempts. Run it again once that attempt has finished: it then reads the new records "
        "(retryable: exit 75)."
    )


def _refuse_other_dataset(target: ReadTarget, result: GetResult) -> None:
    """Raise `DatasetNotFoundError` if an object read by location (trust mode) stores another dataset."""
    other = other_dataset(result.metadata, target.ref.id)
    if other is not None:
        raise DatasetNotFoundError(
            f"Dataset {target.ref} has no record in datastore {target.datastore!r}, and the object at its "
            f"predicted location {target.uri} stores another dataset, {other} ({WRITE_DATASET} metadata): "
            "it was written for a dataset of the same type, data ID and run but another ID (a rebuilt "
            "graph?). Import the records of the quantum that produced this dataset, or read the dataset "
            "that is there."
        )


def _full_checksum(result: GetResult, algorithm: checksums.Algorithm) -> checksums.Checksum:
    """Return the ``algorithm`` checksum of ``result.body``: computed as it arrived if it was, else now."""
    fed = result.digest
    if (
        isinstance(fed, checksums.RunningChecksum)
        and fed.algorithm == algorithm
        and fed.nbytes == len(result.body)
    ):
        return fed.checksum()
    return checksums.compute(algorithm, result.body)


def _metadata_checksum(metadata: Mapping[str, str]) -> checksums.Checksum | None:
    """Return the full-object checksum s3qbb wrote into the object metadata, if readable."""
    text = metadata.get(WRITE_CHECKSUM)
    try:
        return checksums.parse(text) if text else None
    except ValueError:
        return None
