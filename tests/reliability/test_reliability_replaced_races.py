"""15 processes read a dataset with its record while a 16th, a ``--rerun`` of its producer, replaces it.

Every read returns exactly the values of the recorded write, or stops with
`DatasetReplacedError` naming the rerun's attempt (retryable, exit 75): never
other values, never "damaged" (exit 1), never another error. Whole reads and
partial reads of the first and of the last rows, while the rerun's multipart
upload holds its placeholder, after it completes with other bytes, with the same
bytes, with fewer bytes, and for a small object. Once the rerun is done, every
read with the old record says "replaced", except where the rerun wrote the same
bytes; the rerun's own record reads its values. On the moto server and SeaweedFS,
on both transports (on obstore, the rounds of other and of fewer bytes).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

import numpy as np
import pytest
from reliability_helpers import root_of
from replaced_race_helpers import ROWS_READ, array_of, reader_worker, rerun_worker

from s3qbb.core.attempt import WriteToken
from s3qbb.datastores.s3 import S3Datastore
from s3qbb.s3.ownership import WRITE_PENDING, WRITE_TOKEN
from s3qbb.testing.data import RefMaker, example_storage_classes
from s3qbb.testing.servers import S3TestEndpoint
from s3qbb.testing.transports import with_transport

READERS = 15
MIB = 1024**2
BIG = 6 * MIB // 64  # rows of 8 float64: 6 MiB, two parts of a 5 MiB multipart upload
SMALL = 16  # 1 KiB: one PUT

ROUNDS = {
    "other bytes": ((0, BIG), (1, BIG)),
    "the same bytes": ((0, BIG), (0, BIG)),
    "fewer bytes": ((0, BIG), (2, BIG // 2)),
    "small": ((0, SMALL), (3, SMALL)),
}
"""Per round: the earlier attempt's ``(seed, rows)`` and the rerun's."""
ROUNDS_OBSTORE = ("other bytes", "fewer bytes")
"""The rounds on the obstore transport (CI time): its ranged reads of a placeholder and of fewer bytes;
the rerun's multipart requests are boto3's there too, raced above."""


def _config(endpoint: S3TestEndpoint, transport: str) -> Any:
    return with_transport(endpoint, transport).config.model_copy(
        update={
            "checksum_block_size": 64 * 1024,
            "multipart_threshold": 5 * MIB,
            "multipart_chunksize": 5 * MIB,
        }
    )


def _race(config: Any, root: str, earlier: tuple[int, int], rerun: tuple[int, int]) -> dict[str, Any]:
    """Write ``earlier``, then race the readers against the rerun writing ``rerun``; return the outcomes."""
    ref = RefMaker().make("NumpyArray")
    store = S3Datastore(root, config=config, storageClassFactory=example_storage_classes())
    try:
        store.put(array_of(*earlier), ref)
        records = store.export_records([ref])
        quantum_id = store.write_token.quantum_id
    finally:
        store.close()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["replaced_race_helpers", "s3qbb.datastores.s3", "numpy", "boto3"])
    barrier, done = ctx.Barrier(READERS + 1), ctx.Event()
    reads, reruns = ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=reader_worker, args=(config, root, ref, records, earlier, i, barrier, done, reads))
        for i in range(READERS)
    ]
    procs.append(
        ctx.Process(target=rerun_worker, args=(config, root, ref, quantum_id, rerun, barrier, reruns))
    )
    for proc in procs:
        proc.start()
    try:
        attempt, outcome, rerun_records = reruns.get(timeout=300)
        done.set()
        outcomes: list[tuple[str, int, bool, str, str]] = []
        finals = 0
        while finals < READERS * len(ROWS_READ):
            outcomes.append(reads.get(timeout=300))
            finals += outcomes[-1][2]
    finally:
        done.set()
        for proc in procs:
            proc.join(60)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)
    return {"ref": ref, "attempt": attempt, "rerun": outcome, "records": rerun_records, "reads": outcomes}


@pytest.mark.slow
def test_reads_racing_a_rerun_return_the_recorded_values_or_say_replaced(
    s3_endpoint: S3TestEndpoint, s3_transport: str
) -> None:
    config = _config(s3_endpoint, s3_transport)
    for kind in ROUNDS if s3_transport == "boto3" else ROUNDS_OBSTORE:
        _check_round(s3_endpoint, config, kind)


def _check_round(endpoint: S3TestEndpoint, config: Any, kind: str) -> None:
    earlier, rerun = ROUNDS[kind]
    result = _race(config, root_of(endpoint), earlier, rerun)
    assert result["rerun"] == "ok", (kind, result["rerun"])
    attempt = result["attempt"]
    allowed = {"earlier", f"replaced {attempt}"}
    wrong = [r for r in result["reads"] if r[-1] not in allowed]
    assert not wrong, (kind, len(wrong), wrong[:5])
    finals = Counter((read, outcome) for _, _, final, read, outcome in result["reads"] if final)
    after = "earlier" if rerun == earlier else f"replaced {attempt}"
    assert finals == {(read, after): READERS for read in ROWS_READ}, kind

    # What is stored is the rerun's whole write, and its record reads it.
    ref = result["ref"]
    reader = S3Datastore(root_of(endpoint), config=config, storageClassFactory=example_storage_classes())
    try:
        reader.import_records(result["records"])
        np.testing.assert_array_equal(reader.get(ref), array_of(*rerun))
        key = reader.key(reader.layout.relpath(ref))
    finally:
        reader.close()
    head = endpoint.client.head_object(Bucket=endpoint.bucket, Key=key)
    token = WriteToken.parse(head["Metadata"][WRITE_TOKEN])
    assert token is not None and token.attempt_id == attempt, kind
    assert WRITE_PENDING not in head["Metadata"], kind
    uploads = endpoint.client.list_multipart_uploads(Bucket=endpoint.bucket, Prefix=key)
    assert not uploads.get("Uploads"), f"{kind}: the rerun left a multipart upload behind"
