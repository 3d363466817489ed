"""Child process of the memory benchmark: N small puts and gets, then report peak RSS.

Run as ``python -m benchmarks.memory_child`` with a JSON job on stdin::

    {"side": SIDE, "endpoint_url": ..., "bucket": ..., "access_key_id": ...,
     "secret_access_key": ..., "prefix": ..., "count": N, "size": 1024}

It prints one JSON line: ``maxrss_kib`` (peak RSS: ``VmHWM``, else ``ru_maxrss``), ``import_rss_kib``
(resident size once the side's modules are imported) and ``seconds``. The sides:

``s3qbb``
    a bare `s3qbb.datastores.s3.S3Datastore`: N puts, then N gets;
``shipped`` / ``obstore``
    the shipped default butler (`s3qbb.QuantumBackedButler`, cache tier on), with the boto3 or
    the obstore transport: one butler puts N outputs, a fresh one reads them back as inputs;
``boto3``
    boto3 and awscrt only (no s3qbb), doing what ``S3Datastore.put``/``get`` do on the wire: a
    create-only PUT carrying a CRC32C checksum, then a GET whose body is read;
``obstore_raw``
    obstore only: create-only ``obstore.put``, then ``obstore.get``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

__all__ = ["main"]


def _status_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _rss_kib() -> int:
    return _status_kib("VmRSS")


def _run_s3qbb(job: dict[str, Any], data: bytes) -> int:
    from s3qbb.config import S3EndpointConfig
    from s3qbb.datastores.s3 import S3Datastore
    from s3qbb.testing.data import RefMaker

    import_rss = _rss_kib()
    transport = {"transport": "boto3"} if "transport" in S3EndpointConfig.model_fields else {}
    config = S3EndpointConfig(
        endpoint_url=job["endpoint_url"],
        region="us-east-1",
        addressing_style="path",
        access_key_id=job["access_key_id"],
        secret_access_key=job["secret_access_key"],
        **transport,
    )
    store = S3Datastore(f"s3://{job['bucket']}/{job['prefix']}", config=config)
    maker = RefMaker(run="memory")
    refs = [maker.make("Bytes", name="blob") for _ in range(job["count"])]
    for ref in refs:
        store.put(data, ref)
    for ref in refs:
        if store.get(ref) != data:
            raise AssertionError("s3qbb read back different bytes")
    store.close()
    return import_rss


def _run_butler(job: dict[str, Any], data: bytes) -> int:
    from s3qbb import DatasetRef, DatasetType, DimensionUniverse, Quantum, QuantumBackedButler

    import_rss = _rss_kib()
    endpoint: dict[str, Any] = {
        "endpoint_url": job["endpoint_url"],
        "region": "us-east-1",
        "addressing_style": "path",
        "access_key_id": job["access_key_id"],
        "secret_access_key": job["secret_access_key"],
    }
    from s3qbb.config import S3EndpointConfig

    if "transport" in S3EndpointConfig.model_fields:  # named, so that S3QBB_S3_TRANSPORT cannot change it
        endpoint["transport"] = "obstore" if job["side"] == "obstore" else "boto3"
    config = {"datastore": {"root": f"s3://{job['bucket']}/{job['prefix']}", "endpoint": endpoint}}
    universe = DimensionUniverse()
    blob = DatasetType("blob", ["instrument", "visit"], "Bytes", universe=universe)
    refs = [DatasetRef(blob, {"instrument": "Mem", "visit": i}, "memory") for i in range(job["count"])]
    writer = QuantumBackedButler.initialize(config, Quantum(taskLabel="memory", outputs=refs), universe)
    for ref in refs:
        writer.put(data, ref)
    records = writer._datastore.export_records(refs)
    writer.close()
    reader = QuantumBackedButler.from_predicted(
        config, [r.id for r in refs], [], universe, records, refs=refs
    )
    for ref in refs:
        if reader.get(ref) != data:
            raise AssertionError("the butler read back different bytes")
    reader.close()
    return import_rss


def _run_obstore_raw(job: dict[str, Any], data: bytes) -> int:
    import obstore
    from obstore.store import S3Store

    import_rss = _rss_kib()
    store = S3Store(
        job["bucket"],
        endpoint=job["endpoint_url"],
        access_key_id=job["access_key_id"],
        secret_access_key=job["secret_access_key"],
        region="us-east-1",
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    keys = [f"{job['prefix']}/blob/{i}/blob_{i}_{os.urandom(16).hex()}.bin" for i in range(job["count"])]
    for key in keys:
        obstore.put(store, key, data, mode="create")
    for key in keys:
        if bytes(obstore.get(store, key).bytes()) != data:
            raise AssertionError("obstore read back different bytes")
    return import_rss


def _run_boto3(job: dict[str, Any], data: bytes) -> int:
    import base64

    import boto3
    import botocore.config
    from awscrt import checksums  # type: ignore[import-untyped]

    import_rss = _rss_kib()
    session = boto3.Session(
        aws_access_key_id=job["access_key_id"],
        aws_secret_access_key=job["secret_access_key"],
        region_name="us-east-1",
    )
    # The client settings s3qbb.s3.client.botocore_config uses, spelled out so s3qbb is not imported.
    config = botocore.config.Config(
        connect_timeout=5.0,
        read_timeout=30.0,
        max_pool_connections=32,
        retries={"mode": "standard", "total_max_attempts": 1},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = session.client("s3", endpoint_url=job["endpoint_url"], config=config)
    keys = [f"{job['prefix']}/blob/{i}/blob_{i}_{os.urandom(16).hex()}.bin" for i in range(job["count"])]
    for key in keys:
        crc = base64.b64encode(checksums.crc32c(data).to_bytes(4, "big")).decode()
        client.put_object(Bucket=job["bucket"], Key=key, Body=data, ChecksumCRC32C=crc, IfNoneMatch="*")
    for key in keys:
        if client.get_object(Bucket=job["bucket"], Key=key)["Body"].read() != data:
            raise AssertionError("boto3 read back different bytes")
    client.close()
    return import_rss


def main() -> None:
    """Run the job read from stdin and print the report."""
    job = json.loads(sys.stdin.read())
    data = os.urandom(int(job["size"]))
    start = time.perf_counter()
    runner = {
        "s3qbb": _run_s3qbb,
        "shipped": _run_butler,
        "obstore": _run_butler,
        "boto3": _run_boto3,
        "obstore_raw": _run_obstore_raw,
    }[job["side"]]
    import_rss = runner(job, data)
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = _status_kib("VmHWM")
    report = {
        "side": job["side"],
        # Linux keeps the larger of ru_maxrss and the RSS of the process image replaced by exec, i.e.
        # the forked copy of the parent: VmHWM (peak RSS of this image) is the figure for this child.
        "maxrss_kib": hwm if hwm > 0 else ru_maxrss,
        "ru_maxrss_kib": ru_maxrss,
        "import_rss_kib": import_rss,
        "end_rss_kib": _rss_kib(),
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
