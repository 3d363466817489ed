"""Client CPU of a GET and a LIST with s3qbb's timestamp parser and with botocore's own.

``python -m benchmarks.timestamps [--server seaweedfs]`` starts a server, writes
1,000 objects of 1 KiB, then, in interleaved rounds, measures the client CPU of
``get_object`` (and reading the body) and of ``list_objects_v2`` of the 1,000
keys through two clients made alike by `s3qbb.s3.client.new_client`: one as
shipped (`s3qbb.s3.client.parse_timestamp`), one whose response parser is given
back botocore's ``dateutil`` parser. SeaweedFS by default: it runs in its own
process, so the CPU measured is the client's alone.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import botocore.utils

from s3qbb.s3.client import new_client

from .servers import make_server

__all__ = ["main", "measure"]

KEYS = 1000
GETS_PER_ROUND = 300
LISTS_PER_ROUND = 5


def _with_botocore_parser(client: Any) -> Any:
    """Give ``client``'s response parser botocore's default timestamp parser back."""
    parser = client._endpoint._response_parser_factory  # private: a benchmark's reference side only
    parser.set_parser_defaults(timestamp_parser=botocore.utils.parse_timestamp)
    return client


def measure(
    server_name: str = "seaweedfs", rounds: int = 5, count: int = KEYS, gets: int = GETS_PER_ROUND
) -> dict[str, dict[str, float]]:
    """Median client CPU seconds per GET and per LIST of ``count`` keys, by parser."""
    server = make_server(server_name).start()
    try:
        endpoint = server.endpoint("timestamps-bench")
        shipped = new_client(endpoint.config)
        keys = [f"k/{i:04d}" for i in range(count)]
        for key in keys:
            shipped.put_object(Bucket=endpoint.bucket, Key=key, Body=b"x" * 1024)
        sides = {"s3qbb": shipped, "botocore": _with_botocore_parser(new_client(endpoint.config))}
        samples: dict[str, dict[str, list[float]]] = {side: {"get": [], "list": []} for side in sides}
        for round_ in range(rounds):
            for side in list(sides)[round_ % 2 :] + list(sides)[: round_ % 2]:
                client = sides[side]
                started = time.process_time()
                for key in keys[:gets]:
                    client.get_object(Bucket=endpoint.bucket, Key=key)["Body"].read()
                samples[side]["get"].append((time.process_time() - started) / gets)
                started = time.process_time()
                for _ in range(LISTS_PER_ROUND):
                    page = client.list_objects_v2(Bucket=endpoint.bucket, Prefix="k/")
                    assert page["KeyCount"] == count
                samples[side]["list"].append((time.process_time() - started) / LISTS_PER_ROUND)
        for client in sides.values():
            client.close()
        return {side: {op: statistics.median(v) for op, v in by.items()} for side, by in samples.items()}
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Print the client CPU per GET and per LIST of each parser."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.timestamps", description=__doc__)
    parser.add_argument("--server", default="seaweedfs", choices=("moto", "seaweedfs"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    result = measure(args.server, args.rounds)
    for side, ops in result.items():
        print(
            f"{side:9s} GET of 1 KiB: {ops['get'] * 1e6:7.0f} us CPU   "
            f"LIST of {KEYS} keys: {ops['list'] * 1e3:6.1f} ms CPU"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
