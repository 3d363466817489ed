"""Attempt leases: a running attempt of a quantum says so, so that no other attempt replaces its outputs.

A batch system may run one quantum twice at once: a retry started while the
first attempt still runs (a lost node, a pod that was only unreachable), or
the same job submitted twice. Write tokens tell the attempts' objects apart,
and a retry replaces what an *earlier* attempt left; but an attempt that is
still running, or that succeeded, must keep its outputs, or the records it
uploads would describe bytes that are no longer stored.

So a job's attempt keeps a small object, its *lease*, at
``<run>/_records/_attempts/<quantum id>.<attempt id>.json``: written before
its first output, renewed every `RENEW_EVERY_S` seconds while it runs, and
rewritten with how the attempt ended (``succeeded``, ``failed``,
``interrupted``) when it ends. Before an attempt replaces another attempt's
object, it reads that attempt's lease (one GET, only then) and replaces the
object only if that attempt ended without success, or died: on this host, its
process is gone; elsewhere, its lease was not renewed for `LEASE_S` seconds
(plus `CLOCK_SKEW_S` for the clocks of two hosts). An attempt that succeeded
keeps its outputs while the quantum's report says so (one more GET), except
from an attempt re-running the quantum on purpose, which first withdraws
that report. Otherwise the write fails
with `~s3qbb.s3.ownership.AttemptActiveError` (exit code 75: a retry then
finds the quantum done, or the other attempt gone). An attempt whose own lease
went unrenewed for `LEASE_S` seconds (a paused process, a long outage) does
not report success if another attempt of the quantum started meanwhile: that
one may have taken its outputs over.

A lease costs a job two ``PUT`` requests (start, end) plus one per
`RENEW_EVERY_S` seconds of running; reading one happens only when two
attempts meet.
"""

from __future__ import annotations

__all__ = ["CLOCK_SKEW_S", "LEASE_S", "RENEW_EVERY_S", "AttemptLease", "lease_alive"]

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import DatasetIntegrityError, DatasetNotFoundError
from ..provenance.files import attempt_key, report_key
from ..s3.ownership import AttemptActiveError

if TYPE_CHECKING:
    from ..core.attempt import WriteToken
    from ..s3.objects import S3Bucket

_LOG = logging.getLogger(__name__)

LEASE_S = 60.0
"""Seconds a lease holds without renewal."""
RENEW_EVERY_S = 15.0
"""Seconds between two renewals of a running attempt's lease."""
CLOCK_SKEW_S = 30.0
"""Seconds a lease written on another host is trusted beyond `LEASE_S` (the two clocks may differ)."""
_ENDED = frozenset({"succeeded", "failed", "interrupted"})


def _process_identity(pid: int) -> tuple[str | None, str | None]:
    """Return the start time of process ``pid`` and its PID namespace (Linux), or `None` for each unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The process name (field 2) may hold spaces: the fields after it follow its last ")".
            started = stat.read().rpartition(b")")[2].split()[19].decode()
    except (OSError, IndexError):
        started = None
    try:
        namespace: str | None = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        namespace = None
    return started, namespace


class AttemptLease:
    """The lease of one running attempt of a quantum (see the module documentation).

    Parameters
    ----------
    bucket : `~s3qbb.s3.objects.S3Bucket`
        Bucket of the datastore root.
    prefix : `str`
        Key prefix of the datastore root (``""`` or ending in ``/``).
    run : `str`
        Output run of the quantum.
    token : `~s3qbb.core.attempt.WriteToken`
        This attempt; use `token` (the same, carrying this lease as its guard) for every write.
    replace_success : `bool`, optional
        Whether this attempt may replace what an attempt that succeeded left
        (``run-quantum --rerun``); an attempt that may still run keeps its outputs all the same.
    """

    def __init__(
        self, bucket: S3Bucket, prefix: str, run: str, token: WriteToken, *, replace_success: bool = False
    ) -> None:
        from ..core.attempt import WriteToken

        self._replace_success = replace_success
        self._bucket = bucket
        self._prefix = prefix
        self._run = run
        self.token = WriteToken(token.quantum_id, token.attempt_id, guard=self)
        """This attempt's write token, guarded by this lease."""
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._started, self._namespace = _process_identity(self._pid)
        self._renewed_at: float | None = None  # time.monotonic() of the last renewal that was stored
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._withdrawn = False  # whether this attempt deleted the report of a success it re-runs

    @property
    def key(self) -> str:
        """Key of this lease in the bucket."""
        return self._prefix + attempt_key(self._run, self.token.quantum_id, self.token.attempt_id)

    def _body(self, state: str) -> bytes:
        return json.dumps(
            {
                "quantum_id": str(self.token.quantum_id),
                "attempt_id": self.token.attempt_id,
                "state": state,
                "host": self._host,
                "pid": self._pid,
                "process_started": self._started,
                "pid_namespace": self._namespace,
                "renewed_at": time.time(),
                "lease_s": LEASE_S,
            }
        ).encode()

    def _write(self, state: str) -> None:
        with self._lock:
            began = time.monotonic()
            self._bucket.put_raw(self.key, self._body(state), token=self.token)
            if state == "running":
                self._renewed_at = began

    def start(self) -> None:
        """Write the lease (state ``running``) and renew it in a daemon thread until `end`.

        Raises
        ------
        s3qbb.errors.S3qbbError
            If the lease cannot be written (the attempt must not start writing outputs).
        """
        self._write("running")
        self._thread = threading.Thread(target=self._renew, name="s3qbb-attempt-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY_S):
            try:
                self._write("running")
            except Exception as err:
                _LOG.warning("Could not renew the lease of attempt %s: %s", self.token.attempt_id, err)

    def check_held(self) -> None:
        """Raise `AttemptActiveError` if another attempt may have taken this one over.

        Only possible if this lease went unrenewed for `LEASE_S` seconds (a
        paused process, a long outage, an extension holding the GIL): then one
        LIST of the quantum's leases tells whether another attempt started,
        which writes its lease before its first output. If none did, the lease
        is renewed and the attempt goes on.
        """
        renewed = self._renewed_at
        if renewed is not None and time.monotonic() - renewed <= LEASE_S:
            return
        ago = "never" if renewed is None else f"{time.monotonic() - renewed:.0f} s ago"
        mine = self.key
        prefix = mine[: mine.rindex(".", 0, mine.rindex("."))] + "."  # <...>/_attempts/<quantum id>.
        others = [key for page in self._bucket.list_keys(prefix) for key in page if key != mine]
        if not others and renewed is not None:
            _LOG.warning(
                "The lease of attempt %s was last renewed %s, but no other attempt of quantum %s started.",
                self.token.attempt_id,
                ago,
                self.token.quantum_id,
            )
            self._write("running")
            return
        reason = (
            f"its lease {self._bucket.uri(mine)} was last renewed {ago} (it holds {LEASE_S:.0f} s) and "
            f"{len(others)} other attempt(s) of the quantum started"
        )
        raise AttemptActiveError(
            f"Attempt {self.token.attempt_id} of quantum {self.token.quantum_id} may have been taken "
            f"over: {reason}; another attempt may have replaced its outputs, so it does not report "
            "success. Retry the job: a later attempt runs the quantum again or finds it done.",
            reason=reason,
        )

    def end(self, state: str) -> None:
        """Stop renewing and write how the attempt ended (``succeeded``, ``failed`` or ``interrupted``).

        A failure to write is logged, not raised: the lease then expires on its own.
        """
        if state not in _ENDED:
            raise ValueError(f"An attempt ends as one of {sorted(_ENDED)}, not {state!r}.")
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._write(state)
        except Exception as err:
            _LOG.warning(
                "Could not record the end (%s) of attempt %s in its lease: %s",
                state,
                self.token.attempt_id,
                err,
            )

    # --- the guard: may this attempt replace another attempt's object? -----------------

    def check_replace(self, mine: WriteToken, other: WriteToken, uri: str) -> None:
        """Raise `AttemptActiveError` unless ``other`` (of this quantum) ended without success, or died.

        An attempt that succeeded keeps its outputs while the quantum's report
        says ``succeeded`` (`_check_success`), except from an attempt re-running
        the quantum on purpose (``replace_success``).

        Reads ``other``'s lease (one GET). An attempt without a lease (of an
        s3qbb without leases, or not run as a batch job) counts as ended.
        """
        key = self._prefix + attempt_key(self._run, other.quantum_id, other.attempt_id)
        try:
            lease: dict[str, Any] = json.loads(self._bucket.get_checked(key).body)
        except DatasetNotFoundError:
            return
        except (ValueError, UnicodeDecodeError, DatasetIntegrityError) as err:
            raise self._active(
                uri, other, f"its lease {self._bucket.uri(key)} is unreadable ({err})"
            ) from err
        state = lease.get("state")
        if state in ("failed", "interrupted"):
            return
        if state == "succeeded":
            self._check_success(uri, other)
            return
        alive = self._alive(lease)
        if alive is not None:
            raise self._active(uri, other, f"it is running ({alive})")
        _LOG.warning(
            "Attempt %s of quantum %s died (%s): replacing what it left.",
            other.attempt_id,
            other.quantum_id,
            f"host {lease.get('host')}, pid {lease.get('pid')}",
        )

    def _check_success(self, uri: str, other: WriteToken) -> None:
        """``other`` ended with success: keep what it left while the quantum's report vouches for it.

        With no readable report saying ``succeeded`` (a damaged report, one of ``ingest --recover``,
        or one withdrawn by a re-run that then died), nothing vouches for the outputs any more:
        they are replaced, as `s3qbb.batch.job.previous_success` runs the quantum again. A re-run
        on purpose first withdraws the report (one DELETE), so that should it die half-way, the
        quantum reads as incomplete (``graph status``, ``ingest --recover``, a retry) instead of
        as a success whose outputs no longer match its records.
        """
        key = self._prefix + report_key(self._run, other.quantum_id)
        if not _says_succeeded(self._bucket, key):
            _LOG.warning(
                "Attempt %s of quantum %s succeeded, but no readable report %s says so: replacing what it "
                "left.",
                other.attempt_id,
                other.quantum_id,
                self._bucket.uri(key),
            )
            return
        if not self._replace_success:
            raise self._active(uri, other, "it succeeded; the quantum is done")
        if not self._withdrawn:
            _LOG.warning(
                "Re-running quantum %s on purpose (--rerun): withdrawing the report %s of its successful "
                "attempt %s before replacing its outputs (should this attempt not finish, the quantum "
                "reads as incomplete: run it again, or `s3qbb ingest --recover` its run).",
                other.quantum_id,
                self._bucket.uri(key),
                other.attempt_id,
            )
            self._bucket.delete(key)
            self._withdrawn = True

    def _alive(self, lease: dict[str, Any]) -> str | None:
        """Why the attempt of a ``running`` lease may still run, or `None` if it died."""
        alive, why = _lease_alive(lease, self._host, self._namespace)
        return why if alive else None

    def _active(self, uri: str, other: WriteToken, why: str) -> AttemptActiveError:
        reason = (
            f"written by attempt {other.attempt_id} of quantum {other.quantum_id}, and {why}; "
            "retry this job once that attempt has ended"
        )
        return AttemptActiveError(
            f"{uri} already exists ({reason}); it was left untouched. This attempt "
            f"({self.token.attempt_id}) stops; retry the job later: it then finds the quantum done, "
            f"or that attempt ended.",
            reason=reason,
        )


def lease_alive(lease: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the attempt of a lease saying ``running`` may still run, and why.

    The rule a retry follows before it replaces that attempt's objects
    (`AttemptLease.check_replace`): on this host (same PID namespace), the
    attempt runs while its process does; elsewhere, while its lease was
    renewed within its ``lease_s`` (`LEASE_S`) plus `CLOCK_SKEW_S` seconds.

    Parameters
    ----------
    lease : `~collections.abc.Mapping`
        The lease's JSON, as `AttemptLease` writes it.

    Returns
    -------
    alive : `bool`
        Whether the attempt may still run.
    why : `str`
        Where it runs (``"host H, pid P, lease renewed N s ago"``), or why it is taken for dead.
    """
    return _lease_alive(lease, socket.gethostname(), _process_identity(os.getpid())[1])


def _lease_alive(lease: Mapping[str, Any], here: str, namespace: str | None) -> tuple[bool, str]:
    host, pid = lease.get("host"), lease.get("pid")
    if (
        host == here
        and isinstance(pid, int)
        and lease.get("pid_namespace") is not None
        and lease.get("pid_namespace") == namespace
    ):
        # Same host and PID namespace: the process tells, at once (a killed job's retry need not wait).
        started, _ = _process_identity(pid)
        if started is None or started != lease.get("process_started"):
            return False, f"its process {pid} on this host is gone"  # or the PID is another process's now
        return True, f"process {pid} on this host"
    renewed_at, lease_s = lease.get("renewed_at"), lease.get("lease_s", LEASE_S)
    if not isinstance(renewed_at, (int, float)) or not isinstance(lease_s, (int, float)):
        return True, f"host {host}, pid {pid}; its lease has no renewal time"
    age = time.time() - renewed_at
    if age > lease_s + CLOCK_SKEW_S:
        return False, (
            f"host {host}, pid {pid}: its lease was last renewed {age:.0f} s ago and holds {lease_s:.0f} s "
            f"(+{CLOCK_SKEW_S:.0f} s for clock skew)"
        )
    return True, f"host {host}, pid {pid}, lease renewed {max(age, 0.0):.0f} s ago"


def _says_succeeded(bucket: S3Bucket, key: str) -> bool:
    """Whether the report at ``key`` exists, is readable and says ``succeeded`` (one GET)."""
    from ..errors import RecordDataError
    from ..provenance.report import QuantumExecutionReport

    try:
        return QuantumExecutionReport.from_json(bucket.get_checked(key).body).status == "succeeded"
    except (DatasetNotFoundError, DatasetIntegrityError, RecordDataError, ValueError):
        return False
