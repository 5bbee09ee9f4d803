"""Each benchmark in bench/ run small, so none of them rots: it completes, prints its figures,
and leaves no process behind. Timings are printed by the benchmarks, never asserted here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.services import unavailable

pytestmark = pytest.mark.integration


def _survivors() -> list[str]:
    """Processes started by a benchmark that has ended (they carry its marker, the benchmark's
    temporary directory, which it removes when it ends) and are still running. A benchmark
    still running (another session's, on a shared machine) still has its directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        for var in environ.split(b"\0"):
            if var.startswith(b"SENTINEL_BENCH_OWNER="):
                owner = Path(var.partition(b"=")[2].decode(errors="replace"))
                if not owner.exists():
                    found.append(f"{proc.name}: {(proc / 'cmdline').read_bytes()!r}")
    return found


def run_bench(script: str, *args: str, timeout: float = 60) -> str:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (required under CI)")
        pytest.skip("redis-server is not installed")
    before = set(_survivors())
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert not set(_survivors()) - before, out
    return out


def test_ingest() -> None:
    out = run_bench("ingest.py", "--n", "2000", "--rounds", "1")
    for consumer in ("bare", "flower", "sentinel"):
        assert re.search(rf"^{consumer}\s+[\d,]+\s+[\d,]+\s+[\d.]+$", out, re.M), out
    assert re.search(r"ratio sentinel/bare: [\d.]+x", out), out
    assert re.search(r"ratio sentinel/flower: [\d.]+x", out), out


def test_memory() -> None:
    out = run_bench("memory.py", "--n", "6000", "--names", "300", "--step", "2000")
    assert out.count("peak RSS curve") == 2, out
    assert "6,000/6,000 events counted" in out, out
    assert re.search(r"ratio flower/sentinel peak RSS: [\d.]+x", out), out


def test_evaluate() -> None:
    out = run_bench("evaluate.py", "--series", "300", "--rules", "20", "--ticks", "3")
    assert re.search(r"tick: median [\d.]+ ms, p99 [\d.]+ ms", out), out
    assert "task_latency" in out and "failure_rate" in out, out
    for case in ("worst", "5%"):
        for mode in ("every", "changed"):
            assert re.search(rf"{case} {mode} +tick: .* longest lock hold [\d.]+ ms", out), out
        assert re.search(rf"^{case}: median [\d.]+ -> [\d.]+ ms", out, re.M), out


def test_sustained() -> None:
    out = run_bench(
        "sustained.py", "--rate", "2000", "--duration", "4", "--step", "2", "--top", "3000"
    )
    assert re.search(r"^sentinel +2,000/s x 4 s: .* -> zero loss$", out, re.M), out
    assert re.search(r"highest zero-loss rate tried: sentinel [\d,]+/s, bare [\d,]+/s", out), out


def test_scrape() -> None:
    out = run_bench("scrape.py", "--names", "100", "--scrapes", "1")
    assert re.search(r"100 names: RSS before [\d.]+ MiB, peak during 1 scrapes [\d.]+ MiB", out)
    for way in ("text", "prometheus"):
        runs = r"wall [\d,]+ ms \(max [\d,]+\), CPU [\d,]+ ms"
        assert re.search(rf"{way} +lines: {runs}; objects: {runs}; x[\d.]+ wall", out), out
    assert "per-task lines identical" in out, out


def test_prometheus_compare() -> None:
    if shutil.which("prometheus") is None:
        unavailable("prometheus is not installed (apt-get install prometheus)")
    out = run_bench(
        "prometheus_compare.py",
        *("--names", "20", "--rate", "300", "--duration", "10", "--warmup", "5"),
        *("--interval", "1"),
    )
    assert re.search(r"ratio sentinel tick / prometheus rule group: [\d.]+x", out), out
    assert re.search(r"failure ratio [1-9][\d,]*, p95 runtime [1-9][\d,]*", out), out


def test_detect() -> None:
    out = run_bench("detect.py", "--fast", "--timeout", "30")
    assert re.search(r"failure rate: first failing task -> firing +[\d.]+ s, -> page", out), out
    assert re.search(r"worker death: SIGKILL -> firing +[\d.]+ s, -> page", out), out


def test_api_load() -> None:
    out = run_bench("api_load.py", "--n", "100", "--rounds", "1", "--slowloris", "5")
    assert re.search(r"round 1: ok 100/100 .* errors: none", out), out
    assert re.search(r"median round: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms", out), out
    assert "refused 0, failed 0 of 100; tracebacks in sentinel's log: 0" in out, out


def test_delivery() -> None:
    out = run_bench("delivery.py", "--groups", "2", "--hold", "1", timeout=120)
    assert re.search(r"^  answered +first +[\d.]+ s", out, re.M), out
    assert re.search(r"last group's page answered: [\d.]+ s -> [\d.]+ s", out), out
