"""The studio watching runs: what five open pages cost a training run, the runs table at 2,000 runs, and the
studio's memory over watched runs.

Everything happens in a temporary output folder (``$IMAGEPIPE_OUTPUT`` of the runs and of
the studio); the bundled digits are the data.

1. **Watched against unwatched**: the same training run (the default config on the
   digits' ``train`` split, :data:`Settings.epochs` epochs, seed 0, ``--no-progress``)
   unwatched, with no studio running, and watched: a real studio server
   (``python -m studio --no-token`` on a free port, started before the run so its start-up
   is not counted) with :data:`WATCHERS` pages open on the run, each a thread that opens the
   runs table and the run's page and then reads its server-sent events
   (``/runs/<run>/events``) until the run ends. Rounds alternate the order (unwatched
   first, then watched first) after an uncounted warm-up run. The run's training time is its
   own: the sum of ``epoch_seconds`` of its ``metrics.csv`` after the first epoch (training
   steps only); the process's wall time (start to exit: start-up, validation, checkpoints,
   figures) is printed beside it. Target: unwatched / watched training time, medians, at
   least :data:`TARGET_RATIO`.
2. **The runs table at 2,000 runs**: :data:`Settings.runs` synthetic run folders written
   through :class:`common.run_folder.RunFolder` (the default config, a manifest of the
   current layout; mostly finished with a best epoch, some stopped early, preempted,
   interrupted, crashed or diverged, a few ``running`` with a dead pid and a few with a
   live one, which are re-read on every request), then ``GET /runs`` (the whole rendered
   page, in this process through Starlette's test client): cold (the table's cache
   emptied before the request; the files are in the OS's page cache) and warm (cached),
   medians of :data:`TABLE_REPEATS`. Target: both under :data:`TABLE_TARGET_SECONDS`.
3. **Memory**: a studio server process watches consecutive runs with :data:`WATCHERS` pages
   each (every page reconnects for each run) for :data:`Settings.memory_seconds`; its
   resident memory (``VmRSS``) and thread count are sampled every :data:`Settings.sample_seconds`.
   Printed: the first and last samples, the peak, the memory after each run (and its
   least-squares growth per run after the first), and the least-squares slope after
   :data:`Settings.warmup_seconds` in MiB per hour. Target (flat): the slope under
   :data:`FLAT_SHARE_PER_HOUR` of the last sample per hour. A window of a few minutes
   resolves a slope of a few MiB per hour at best (one allocator step of 0.1 MiB in three
   minutes reads as 2 MiB per hour), and each new run adds a row to the table's cache.

``--rounds`` (default 3) is the number of watched/unwatched pairs. ``--quick`` trains on the
dev split for 2 epochs, writes 50 run folders and watches for 20 s: it checks that the
benchmark runs, its figures mean nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from common.paths import PROJECT_ROOT
from common.provenance import host_name, package_versions
from common.run_folder import RunFolder, RunManifest, RunStatus

TARGET_RATIO = 0.97
"""Least ratio of the unwatched run's training time to the watched run's."""
TABLE_TARGET_SECONDS = 1.0
"""Most seconds ``GET /runs`` may take at 2,000 runs, cold or warm."""
FLAT_SHARE_PER_HOUR = 0.10
"""Largest growth per hour, as a share of the studio's resident memory, that still counts as flat (about 5 MiB per
hour: over the default window, twice what one 0.1 MiB allocator step after the warm-up reads as)."""
WATCHERS = 5
"""Pages open on a watched run."""
TABLE_REPEATS = 3
"""Cold and warm requests of the runs table (medians)."""
TOKEN = "bench-studio-" + "0123456789abcdef" * 2
BASE = "http://127.0.0.1:8765"


@dataclass(frozen=True)
class Settings:
    """The benchmark's size.

    Attributes:
        epochs: Epochs of each training run.
        dev: Train on the dev split (quick mode) instead of ``train``.
        rounds: Watched/unwatched pairs.
        runs: Synthetic run folders of the runs table.
        memory_seconds: How long the memory part watches runs.
        sample_seconds: Between two memory samples.
        warmup_seconds: Samples left out of the memory slope.
    """

    epochs: int = 12
    dev: bool = False
    rounds: int = 3
    runs: int = 2000
    memory_seconds: float = 240.0
    sample_seconds: float = 2.0
    warmup_seconds: float = 60.0


QUICK = Settings(epochs=2, dev=True, rounds=1, runs=50, memory_seconds=20.0, sample_seconds=1.0, warmup_seconds=5.0)


def main(rounds: int = 3, quick: bool = False) -> int:
    """Run the three parts and print their figures; 0 when every target is met, 1 otherwise.

    Args:
        rounds: Watched/unwatched pairs of part 1.
        quick: Small settings that only check the benchmark runs.
    """
    settings = QUICK if quick else replace(Settings(), rounds=max(1, rounds))
    print(f"studio benchmark: {settings}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as folder:
        base = Path(folder)
        ok = watched_against_unwatched(base / "watch", settings)
        ok &= runs_table(base / "table", settings)
        ok &= studio_memory(base / "memory", settings)
    if quick:
        print("(--quick: the benchmark ran; its figures mean nothing)")
    return 0 if ok else 1


# -- processes -----------------------------------------------------------------------------


def environment(output: Path) -> dict[str, str]:
    """This process's environment with ``$IMAGEPIPE_OUTPUT`` set to ``output`` (and no studio token)."""
    env = {**os.environ, "IMAGEPIPE_OUTPUT": str(output), "PYTHONUNBUFFERED": "1"}
    env.pop("IMAGEPIPE_STUDIO_TOKEN", None)
    return env


def free_port() -> int:
    """A free TCP port on this machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class StudioServer:
    """A studio server process of the benchmark.

    Attributes:
        process: The ``python -m studio`` process.
        url: Where it serves.
        log: Its console output.
    """

    process: subprocess.Popen
    url: str
    log: Path


@contextmanager
def studio_server(output: Path) -> Iterator[StudioServer]:
    """A ``python -m studio --no-token`` process on a free port serving ``output``, stopped (SIGINT) at the end.

    Raises:
        RuntimeError: When it does not answer within a minute.
    """
    port = free_port()
    log = output / f"studio-{port}.log"
    output.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as console:
        process = subprocess.Popen([sys.executable, "-m", "studio", "--port", str(port), "--no-token"],
                                   cwd=PROJECT_ROOT, env=environment(output), stdout=console,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = StudioServer(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_serving(server)
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_serving(server: StudioServer, timeout: float = 60.0) -> None:
    """Return once the studio answers a request.

    Raises:
        RuntimeError: When its process ends or it does not answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the studio exited ({server.process.returncode}): {tail(server.log)}")
        try:
            httpx.get(server.url + "/", timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the studio did not answer within {timeout:.0f} s: {tail(server.log)}")


def tail(path: Path, lines: int = 10) -> str:
    """The last lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


def start_run(output: Path, name: str, settings: Settings, epochs: int | None = None) -> subprocess.Popen:
    """Start ``python -m train --name <name>`` in ``output`` (its console goes to ``<output>/<name>.log``)."""
    output.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "train", "--no-progress", "--name", name,
               f"epochs={epochs or settings.epochs}", "seed=0", *(["--dev"] if settings.dev else [])]
    with open(output / f"{name}.log", "wb") as console:
        return subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment(output), stdout=console,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def run_folder_of(output: Path, name: str, process: subprocess.Popen, timeout: float = 120.0) -> RunFolder:
    """The folder ``<output>/train/<name>-*`` of a started run, once its ``manifest.json`` is written.

    Raises:
        RuntimeError: When the run ends or no folder appears within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted((output / "train").glob(f"{name}-*/manifest.json"))
        if found:
            return RunFolder(found[0].parent)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"run {name} wrote no run folder: {tail(output / f'{name}.log')}")


def finish(output: Path, name: str, process: subprocess.Popen) -> None:
    """Wait for a run to end.

    Raises:
        RuntimeError: When it failed.
    """
    if process.wait() != 0:
        raise RuntimeError(f"run {name} failed ({process.returncode}): {tail(output / f'{name}.log')}")


# -- pages watching a run ------------------------------------------------------------------


@dataclass
class Page:
    """What one open page of a run received.

    Attributes:
        events: Server-sent events with data.
        received: Bytes of the event stream.
        ended: Whether the stream said the run ended.
        error: Why the page stopped early, if it did.
    """

    events: int = 0
    received: int = 0
    ended: bool = False
    error: str = ""


def watch_page(url: str, run: str, page: Page) -> None:
    """One browser page on a run: the runs table, the run's page, then its event stream until the run ends."""
    try:
        with httpx.Client(base_url=url, follow_redirects=True, timeout=httpx.Timeout(10.0, read=60.0)) as client:
            for path in ("/runs", f"/runs/{run}"):  # the first one signs in (a session cookie, --no-token)
                client.get(path, headers={"accept": "text/html"}).raise_for_status()
            with client.stream("GET", f"/runs/{run}/events", headers={"accept": "text/event-stream"}) as stream:
                stream.raise_for_status()
                for line in stream.iter_lines():
                    page.received += len(line) + 1
                    page.events += line.startswith("data:")
                    if line == "event: end":
                        page.ended = True
                        return
    except httpx.HTTPError as exc:
        page.error = f"{type(exc).__name__}: {exc}"


@contextmanager
def watching(url: str, run: str, pages: int = WATCHERS) -> Iterator[list[Page]]:
    """``pages`` threads watching ``run`` at ``url``; waits (at most a minute) for their streams to end on leaving."""
    seen = [Page() for _ in range(pages)]
    threads = [threading.Thread(target=watch_page, args=(url, run, page), name=f"page-{i}", daemon=True)
               for i, page in enumerate(seen)]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        deadline = time.monotonic() + 60.0
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


@dataclass
class Timing:
    """One training run as measured.

    Attributes:
        train_seconds: Its own training time: ``epoch_seconds`` summed after the first epoch.
        wall_seconds: Its process, start to exit.
        events: Server-sent events its pages received, all together.
        problems: Pages that stopped before the run's end, and why.
    """

    train_seconds: float
    wall_seconds: float
    events: int = 0
    problems: list[str] = field(default_factory=list)


def timed_run(output: Path, name: str, settings: Settings, server: StudioServer | None = None,
              epochs: int | None = None) -> Timing:
    """Train run ``name`` in ``output``, watched by :data:`WATCHERS` pages of ``server`` when given.

    Raises:
        RuntimeError: When the run (or the studio) fails.
    """
    started = time.perf_counter()
    process = start_run(output, name, settings, epochs)
    pages: list[Page] = []
    try:
        if server is None:
            process.wait()
            wall = time.perf_counter() - started
        else:
            with watching(server.url, run_folder_of(output, name, process).name) as pages:
                process.wait()
                wall = time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.kill()
    finish(output, name, process)
    rows = run_folder_of(output, name, process).read_metrics()
    problems = [page.error or "stream closed before the run's end" for page in pages if page.error or not page.ended]
    return Timing(sum(row["epoch_seconds"] for row in rows[1:] or rows), wall,
                  sum(page.events for page in pages), problems)


# -- 1. watched against unwatched ----------------------------------------------------------


def watched_against_unwatched(output: Path, settings: Settings) -> bool:
    """Part 1: the same run unwatched and watched, rounds alternating the order; True when on target."""
    split = "dev" if settings.dev else "train"
    print(f"\n1. a run watched by {WATCHERS} pages against the same run unwatched "
          f"(digits {split} split, {settings.epochs} epochs, {settings.rounds} round(s))", flush=True)
    timed_run(output, "bench-warmup", replace(settings, dev=True), epochs=1)  # imports and data into the caches
    unwatched: list[Timing] = []
    watched: list[Timing] = []
    for index in range(settings.rounds):
        for which in ("unwatched", "watched") if index % 2 == 0 else ("watched", "unwatched"):
            if which == "watched":
                with studio_server(output) as server:  # started before the run: its start-up is not counted
                    timing = timed_run(output, f"bench-watched-{index}", settings, server)
                watched.append(timing)
            else:
                timing = timed_run(output, f"bench-unwatched-{index}", settings)
                unwatched.append(timing)
            print(f"   round {index + 1} {which:9s}  training {timing.train_seconds:6.2f} s  "
                  f"process {timing.wall_seconds:6.2f} s  events {timing.events}", flush=True)
            for problem in timing.problems:
                print(f"   ! a page: {problem}")
    return print_watch(unwatched, watched)


def print_watch(unwatched: list[Timing], watched: list[Timing]) -> bool:
    """Print part 1's table; True when the training-time ratio is on target and every page saw its run's end."""
    train = [statistics.median(t.train_seconds for t in side) for side in (unwatched, watched)]
    wall = [statistics.median(t.wall_seconds for t in side) for side in (unwatched, watched)]
    ratio, wall_ratio = train[0] / train[1], wall[0] / wall[1]
    pairs = ", ".join(f"{u.train_seconds / w.train_seconds:.3f}" for u, w in zip(unwatched, watched))
    print(f"\n   {'':28s} {'training s':>11s} {'process s':>10s} {'events/page':>12s}")
    print(f"   {'unwatched (no studio)':28s} {train[0]:11.2f} {wall[0]:10.2f} {'':>12s}")
    print(f"   {f'watched ({WATCHERS} pages)':28s} {train[1]:11.2f} {wall[1]:10.2f} "
          f"{statistics.median(t.events for t in watched) / WATCHERS:12.1f}")
    print(f"   unwatched / watched, training time (medians): {ratio:.3f} "
          f"(target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'}); per round: {pairs}")
    print(f"   unwatched / watched, process wall time (medians): {wall_ratio:.3f}")
    fastest = [min(t.train_seconds for t in side) for side in (unwatched, watched)]
    print(f"   fastest round: unwatched {fastest[0]:.2f} s, watched {fastest[1]:.2f} s "
          f"(ratio {fastest[0] / fastest[1]:.3f})")
    complete = not any(t.problems for t in watched)
    if not complete:
        print("   ! some pages stopped before their run's end (see above)")
    return ratio >= TARGET_RATIO and complete


# -- 2. the runs table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """What the synthetic runs share: the default training config and the constant parts of a manifest.

    Attributes:
        values: The training config as plain values.
        network: The network config as plain values.
        network_hash: Its hash.
        manifest: Manifest fields every run has alike.
    """

    values: dict[str, Any]
    network: dict[str, Any]
    network_hash: str
    manifest: dict[str, Any]


def run_template() -> Template:
    """The default training config and a manifest of the current layout (digits, this host, the CPU)."""
    from networks.config import load_network_config
    from train.config import load_train_config
    from train.metrics import EPOCH_METRICS

    config = load_train_config().config
    network = load_network_config(config.network)
    lists = {split: {"path": f"data/digits/lists/{split}.txt", "sha256": "0" * 64, "samples": samples,
                     "role": role, "version": 1}
             for split, samples, role in (("train", 1257, "train"), ("val", 180, "val"))}
    manifest = {"command": ["train/__main__.py", "--name", "bench"], "host": host_name(), "device": "cpu",
                "network": {"name": config.network, "hash": network.hash},
                "data": {"dataset": "data/digits", "classes": [str(c) for c in range(10)], "lists": lists},
                "git": {"commit": "0" * 40, "dirty": False, "diff": None},
                "packages": package_versions(("torch", "torchvision", "timm", "numpy", "pillow", "omegaconf")),
                "metrics": [spec.to_dict() for spec in EPOCH_METRICS]}
    return Template(config.to_dict(), network.to_dict(), network.hash, manifest)


ENDINGS = (*[RunStatus.FINISHED] * 14, RunStatus.STOPPED_EARLY, RunStatus.PREEMPTED, RunStatus.PREEMPTED,
           RunStatus.INTERRUPTED, RunStatus.CRASHED, RunStatus.DIVERGED)
"""How the synthetic runs ended, in turn (70% finished)."""
DEAD_RUNNING = 10
"""Synthetic runs recorded ``running`` by a process that is gone (shown crashed)."""
LIVE_RUNNING = 3
"""Synthetic runs recorded ``running`` by this process (alive: re-read on every request)."""


def iso(seconds: float) -> str:
    """A POSIX time as ISO 8601 (UTC, seconds)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def synthetic_manifest(index: int, name: str, template: Template, started: float, dead_pid: int) -> RunManifest:
    """The manifest of synthetic run ``index``: running (dead or live process) for the first ones, else ended."""
    if index < DEAD_RUNNING + LIVE_RUNNING:
        pid = dead_pid if index < DEAD_RUNNING else os.getpid()
        return RunManifest(name, RunStatus.RUNNING, iso(started), pid=pid, **template.manifest)
    status = ENDINGS[index % len(ENDINGS)]
    done = 60 if status is RunStatus.FINISHED else 5 + index % 50
    best = {"epoch": max(1, done - index % 7), "value": 0.04 + (index % 97) / 1000, "metric": "val/loss"}
    last = {"epoch": done, "step": 20 * done, "val/loss": best["value"] + 0.01, "val/accuracy": 0.97}
    result: dict[str, Any] = {"epochs_completed": done, "best": best, "last": last,
                              "error": "RuntimeError: boom" if status is RunStatus.CRASHED else None}
    if status is RunStatus.PREEMPTED:
        result.update(signal="SIGTERM", position={"epoch": done, "step_in_epoch": 7, "steps_per_epoch": 20})
    return RunManifest(name, status, iso(started), iso(started + 30.0 * done), pid=1000 + index,
                       result=result, **template.manifest)


def write_runs(root: Path, count: int, template: Template) -> None:
    """Write ``count`` synthetic run folders under ``root`` through :class:`RunFolder`."""
    from common.run_folder import MetricSpec

    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid is free now: a run recorded by it is shown crashed
    specs = [MetricSpec.from_dict(spec, "template") for spec in template.manifest["metrics"]]
    now = time.time()
    for index in range(count):
        folder = RunFolder.create(f"bench-{index:04d}", root)
        values = {**template.values, "optim": {**template.values["optim"], "lr": 1e-4 * (1 + index % 30)}}
        folder.write_config(values, template.network, template.network_hash)
        manifest = synthetic_manifest(index, folder.name, template, now - 3600.0 * (index + 1), gone.pid)
        folder.write_manifest(manifest)
        if manifest.status is RunStatus.RUNNING and manifest.pid == os.getpid():
            for epoch in range(1, 6):
                folder.append_metrics({"epoch": epoch, "step": 20 * epoch, "val/loss": 1.0 / epoch,
                                       "epoch_seconds": 2.0}, specs)


@contextmanager
def output_folder(path: Path) -> Iterator[Path]:
    """``$IMAGEPIPE_OUTPUT`` set to ``path`` in this process for the block."""
    previous = os.environ.get("IMAGEPIPE_OUTPUT")
    os.environ["IMAGEPIPE_OUTPUT"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("IMAGEPIPE_OUTPUT", None)
        else:
            os.environ["IMAGEPIPE_OUTPUT"] = previous


def timed_get(client: Any, expected: int) -> float:
    """Seconds of one ``GET /runs`` (the rendered page).

    Raises:
        RuntimeError: When it fails or does not list ``expected`` runs.
    """
    started = time.perf_counter()
    response = client.get("/runs", headers={"accept": "text/html"})
    seconds = time.perf_counter() - started
    rows = response.text.count("<tr data-run=")
    if response.status_code != 200 or rows != expected:
        raise RuntimeError(f"GET /runs: {response.status_code}, {rows} runs listed of {expected}")
    return seconds


def time_table(output: Path, expected: int) -> tuple[float, list[float], list[float], int]:
    """``GET /runs`` on a studio in this process: the first request, cold ones (cache emptied), warm ones, and
    the page's size in bytes."""
    from starlette.testclient import TestClient

    from studio.app import build_app
    from studio.server import StudioOptions, build_studio

    with output_folder(output):
        studio = build_studio(StudioOptions(), TOKEN)
        with TestClient(build_app(studio), base_url=BASE) as client:
            signed = client.get(f"/runs?token={TOKEN}", follow_redirects=False)
            if signed.status_code != 303:
                raise RuntimeError(f"sign-in: {signed.status_code} {signed.text[:200]}")
            first = timed_get(client, expected)
            cold, warm = [], []
            for _ in range(TABLE_REPEATS):
                studio.table.cache.clear()
                cold.append(timed_get(client, expected))
                warm.append(timed_get(client, expected))
            size = len(client.get("/runs").content)
    return first, cold, warm, size


def runs_table(output: Path, settings: Settings) -> bool:
    """Part 2: ``GET /runs`` with :data:`Settings.runs` run folders, cold and warm; True when on target."""
    print(f"\n2. the runs table (GET /runs, rendered) with {settings.runs:,} run folders", flush=True)
    started = time.perf_counter()
    write_runs(output / "train", settings.runs, run_template())
    print(f"   wrote {settings.runs:,} run folders in {time.perf_counter() - started:.1f} s "
          f"({DEAD_RUNNING} running by a dead process, {LIVE_RUNNING} by a live one)", flush=True)
    first, cold, warm, size = time_table(output, settings.runs)
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    ok = max(cold_s, warm_s) < TABLE_TARGET_SECONDS
    print(f"   first request (cache empty, templates compiled): {first:.3f} s; page {size / 1024:.0f} KiB")
    print(f"   cold (cache emptied), median of {TABLE_REPEATS}: {cold_s:.3f} s  "
          f"[{', '.join(f'{s:.3f}' for s in cold)}]")
    print(f"   warm (cached), median of {TABLE_REPEATS}:         {warm_s:.3f} s  "
          f"[{', '.join(f'{s:.3f}' for s in warm)}]")
    print(f"   target: both under {TABLE_TARGET_SECONDS:.0f} s: {'met' if ok else 'NOT met'}")
    return ok


# -- 3. memory -----------------------------------------------------------------------------


def process_status(pid: int) -> tuple[float, int]:
    """A process's resident memory (``VmRSS``) in MiB and its thread count (NaN and 0 once it is gone)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])
    except (OSError, KeyError, ValueError):
        return float("nan"), 0


def sample_rss(pid: int, every: float, samples: list[tuple[float, float, int]], stop: threading.Event) -> None:
    """Append ``(seconds since the start, MiB, threads)`` of ``pid`` every ``every`` seconds until ``stop``."""
    started = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - started, *process_status(pid)))
        stop.wait(every)


def studio_memory(output: Path, settings: Settings) -> bool:
    """Part 3: the studio's memory over consecutive watched runs; True when flat and every page saw its run end."""
    print(f"\n3. the studio's memory watching consecutive runs with {WATCHERS} pages each, "
          f"for {settings.memory_seconds:.0f} s (a sample every {settings.sample_seconds:g} s)", flush=True)
    samples: list[tuple[float, float, int]] = []
    after: list[float] = []
    problems: list[str] = []
    with studio_server(output) as server:
        stop = threading.Event()
        sampler = threading.Thread(target=sample_rss, name="rss",
                                   args=(server.process.pid, settings.sample_seconds, samples, stop), daemon=True)
        sampler.start()
        started = time.monotonic()
        while time.monotonic() - started < settings.memory_seconds:
            timing = timed_run(output, f"bench-memory-{len(after)}", settings, server)
            problems += timing.problems
            after.append(process_status(server.process.pid)[0])
        stop.set()
        sampler.join()
    for problem in problems:
        print(f"   ! a page: {problem}")
    return print_memory(samples, after, settings) and not problems


def print_memory(samples: list[tuple[float, float, int]], after: list[float], settings: Settings) -> bool:
    """Print part 3's figures; True when the slope after the warm-up is flat."""
    kept = [(t, mib) for t, mib, _ in samples if t >= settings.warmup_seconds]
    if len(kept) < 2:
        print("   too few samples after the warm-up for a slope")
        return False
    slope = statistics.linear_regression([t / 3600 for t, _ in kept], [mib for _, mib in kept]).slope
    per_run = statistics.linear_regression(range(len(after) - 1), after[1:]).slope * 1024 if len(after) > 2 else 0.0
    last = samples[-1][1]
    flat = slope <= FLAT_SHARE_PER_HOUR * last
    print(f"   {len(samples)} samples over {samples[-1][0]:.0f} s, {len(after)} runs: first {samples[0][1]:.1f} MiB, "
          f"at {settings.warmup_seconds:.0f} s {kept[0][1]:.1f} MiB, last {last:.1f} MiB, "
          f"peak {max(s[1] for s in samples):.1f} MiB; threads {samples[0][2]} -> {samples[-1][2]}")
    print(f"   after each run: {', '.join(f'{m:.1f}' for m in after)} MiB "
          f"(least squares after the first run: {per_run:+.0f} KiB per run)")
    print(f"   slope after {settings.warmup_seconds:.0f} s (least squares): {slope:+.1f} MiB/hour "
          f"({slope / last:+.1%} of the last sample per hour; flat: under {FLAT_SHARE_PER_HOUR:.0%}): "
          f"{'flat' if flat else 'GROWS'}")
    return flat
