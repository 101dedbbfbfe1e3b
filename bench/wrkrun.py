"""Saturation load with wrk and ``bench/wrk_signed.lua``."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from payloads import WEBHOOK_PATH

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_signed.lua"
_MARKER = "WRK_JSON "


@dataclass(frozen=True)
class SaturationResult:
    """What one wrk run observed."""

    duration_s: float
    requests: int
    status_200: int
    status_other: int
    socket_errors: int
    generated: int
    """request() calls: sent or about to be; one extra for wrk's start-up check."""
    wraps: int
    """Times a wrk thread ran out of distinct bodies and started over."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def requests_per_s(self) -> float:
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failures(self) -> int:
        """Responses other than 200, plus socket errors and timeouts."""
        return self.status_other + self.socket_errors


class WrkError(RuntimeError):
    """wrk failed or printed no summary."""


def wrk_path() -> str:
    """Path of the wrk binary; raise when it is not installed."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk not found: apt-get install -y wrk")
    return path


def _parse(stdout: str) -> SaturationResult:
    """Build the result from the line ``wrk_signed.lua`` prints in done()."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith(_MARKER)), None)
    if line is None:
        raise WrkError(f"no {_MARKER.strip()} line in wrk output:\n{stdout}")
    raw = json.loads(line[len(_MARKER) :])
    return SaturationResult(
        duration_s=raw["duration_us"] / 1e6,
        requests=raw["requests"],
        status_200=raw["status_200"],
        status_other=raw["status_other"],
        socket_errors=sum(
            raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        generated=raw["generated"],
        wraps=raw["wraps"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


def _argv(
    port: int,
    requests_file: Path,
    slices: int,
    first_slice: int,
    *,
    threads: int,
    connections: int,
    duration_s: int,
    timeout_s: int,
) -> list[str]:
    """Command line of one wrk process driving ``port``."""
    return [
        wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration_s}s",
        f"--timeout={timeout_s}s", "-s", str(LUA_SCRIPT),
        f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
        "--", str(requests_file), str(slices), str(first_slice),
    ]  # fmt: skip


def combine(results: Sequence[SaturationResult]) -> SaturationResult:
    """Merge the results of concurrent wrk processes.

    Counts add up; latency percentiles are those of the worst process (wrk prints no
    histogram to merge), which is exact for one process and conservative for several.
    """
    if len(results) == 1:
        return results[0]
    return SaturationResult(
        duration_s=max(r.duration_s for r in results),
        requests=sum(r.requests for r in results),
        status_200=sum(r.status_200 for r in results),
        status_other=sum(r.status_other for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        generated=sum(r.generated for r in results),
        wraps=sum(r.wraps for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p90_ms=max(r.p90_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        max_ms=max(r.max_ms for r in results),
    )


def run_wrk(
    ports: Sequence[int],
    requests_file: Path,
    *,
    threads: int,
    connections: int,
    duration_s: int,
    timeout_s: int = 5,
) -> SaturationResult:
    """Drive every port flat out for ``duration_s`` seconds, one wrk each; merge the results.

    ``connections`` is the total, split evenly over the ports; each wrk gets ``threads``
    threads and its own slices of ``requests_file``, so no body is sent twice.
    """
    slices = threads * len(ports)
    per_port = max(threads, connections // len(ports))
    procs: list[subprocess.Popen[str]] = []
    try:
        for i, port in enumerate(ports):
            argv = _argv(
                port,
                requests_file,
                slices,
                i * threads,
                threads=threads,
                connections=per_port,
                duration_s=duration_s,
                timeout_s=timeout_s,
            )
            procs.append(
                subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        return combine([_collect(proc, duration_s + 60) for proc in procs])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _collect(proc: subprocess.Popen[str], timeout_s: float) -> SaturationResult:
    """Wait for one wrk process and parse its summary."""
    stdout, stderr = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}:\n{stdout}\n{stderr}")
    return _parse(stdout)
