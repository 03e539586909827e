"""A single-node Slurm cluster in a temporary folder, for the tests and for trying the cluster recipes.

It installs nothing: it starts Debian's ``munged``, ``slurmctld`` and ``slurmd``
(packages ``munge`` and ``slurm-wlm``) as the current user (root, since ``slurmd``
needs it) with a key, sockets, state and logs of its own under ``folder``, on ports of
its own, so a machine's own Slurm (if any) is untouched. The node is this machine with
the CPUs and memory ``slurmd -C`` reports. Every daemon is stopped by its process ID.

Use it from Python (``with LocalSlurm(folder) as cluster: ... cluster.env``) or from a
shell::

    python -m tools.slurm_local start /tmp/slurm   # prints `export SLURM_CONF=...`
    python -m tools.slurm_local stop /tmp/slurm

Clients (``sbatch``, ``squeue``, ``scontrol``, ``scancel``) find the cluster through
``SLURM_CONF``. There is no ``sacct`` (no slurmdbd): poll ``squeue`` and ``scontrol``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "srun")
"""What must be installed."""

INSTALL_HINT = "install Debian's packages: apt-get install slurm-wlm munge (as root)"


def missing() -> list[str]:
    """The Slurm and munge programs this machine lacks (empty: a local cluster can start)."""
    return [name for name in PROGRAMS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def node_line() -> str:
    """``NodeName=<host> CPUs=... RealMemory=...`` as ``slurmd -C`` prints it for this machine."""
    out = subprocess.run([_program("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    return next(line for line in out.splitlines() if line.startswith("NodeName="))


def slurm_conf(folder: Path, node: str, munge_socket: Path, ports: list[int]) -> str:
    """The cluster's ``slurm.conf``: one node, one default partition, requeue allowed.

    Args:
        folder: Where state, spool, pid and log files go.
        node: The ``NodeName=...`` line.
        munge_socket: The munge daemon's socket.
        ports: slurmctld's and slurmd's ports.
    """
    host = node.split()[0].split("=", 1)[1]
    return f"""\
ClusterName=imagepipe-local
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
MinJobAge=300
KillWait=30
MpiDefault=none
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """munged, slurmctld and slurmd with their files under ``folder``; a context manager.

    Attributes:
        folder: The cluster's folder.
        env: The environment for Slurm's clients (``SLURM_CONF`` set).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.env = {**os.environ, "SLURM_CONF": str(self.folder / "slurm.conf")}

    def __enter__(self) -> LocalSlurm:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        """Start the three daemons and wait until the node takes jobs.

        Raises:
            RuntimeError: A program is missing, or the node did not come up in ``timeout`` seconds.
        """
        if missing():
            raise RuntimeError(f"no local Slurm: {', '.join(missing())} not found; {INSTALL_HINT}")
        for sub in ("state", "spool", "munge"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        munge = self.folder / "munge"
        munge.chmod(0o700)
        subprocess.run([_program("mungekey"), "-c", "-f", "-k", str(munge / "munge.key")], check=True,
                       capture_output=True)
        subprocess.run([_program("munged"), "-f", f"--socket={munge / 'socket'}", f"--key-file={munge / 'munge.key'}",
                        f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                        f"--seed-file={munge / 'munged.seed'}"], check=True, capture_output=True)
        conf = slurm_conf(self.folder, node_line(), munge / "socket", _free_ports(2))
        (self.folder / "slurm.conf").write_text(conf)
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([_program(daemon), "-f", str(self.folder / "slurm.conf")], check=True, env=self.env,
                           capture_output=True)
        self._wait_idle(timeout)

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-o", "%T", check=False).strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the local Slurm node is {state or 'not answering'} after {timeout:.0f} s; "
                           f"see {self.folder}/slurmctld.log and slurmd.log")

    def run(self, *command: str, check: bool = True) -> str:
        """Run a Slurm client command against this cluster; returns its standard output."""
        result = subprocess.run([_program(command[0]), *command[1:]], capture_output=True, text=True, env=self.env)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def pids(self) -> dict[str, int]:
        """The running daemons' process IDs, read from their pid files."""
        files = {"slurmd": self.folder / "slurmd.pid", "slurmctld": self.folder / "slurmctld.pid",
                 "munged": self.folder / "munge" / "munged.pid"}
        found = {}
        for name, path in files.items():
            try:
                found[name] = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return found

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged by their process IDs, and wait for each."""
        if (self.folder / "slurm.conf").exists():
            self.run("scancel", "--full", "--user", str(os.getuid()), check=False)
        for pid in self.pids().values():
            _stop_pid(pid, timeout)


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; returns once the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str]) -> int:
    """``python -m tools.slurm_local start|stop FOLDER``."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tools.slurm_local start|stop FOLDER", file=sys.stderr)
        return 2
    cluster = LocalSlurm(Path(argv[1]).resolve())
    if argv[0] == "stop":
        cluster.stop()
        return 0
    try:
        cluster.start()
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        cluster.stop()
        return 1
    print(f"export SLURM_CONF={cluster.folder / 'slurm.conf'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
