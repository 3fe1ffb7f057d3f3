"""A one-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd.

Everything the cluster keeps lives in one folder: its munge key, sockets, state, spool,
logs and ``slurm.conf``. The commands that talk to it (``sbatch``, ``squeue``) find it through ``SLURM_CONF``,
so a system-wide SLURM, if any, is not touched. The plugin's job step drops every
``SLURM_*`` variable before its ``srun`` (snakemake-executor-plugin-slurm-jobstep 0.6), so
that ``srun`` would look for ``/etc/slurm/slurm.conf``, where a real cluster keeps it:
the cluster's ``bin/srun``, first on the jobs' ``PATH``, sets ``SLURM_CONF`` back.

No accounting daemon: slurmdbd needs a MariaDB server. SLURM's accounting storage is
off, so ``sacct`` has nothing to answer; snakemake-executor-plugin-slurm reads the jobs'
states with ``squeue`` instead (``slurm-status-command: squeue``), which the plugin
trusts only while ``MinJobAge`` (how long a finished job stays known to slurmctld)
outlasts three of its first status intervals, so ``MinJobAge`` is set long. Finished jobs
are also written to a job completion log (``jobcomp/filetxt``), the record the tests
read to see which jobs SLURM ran.

A machine that cannot run SLURM (programs missing, daemons that do not come up) raises
:class:`SlurmUnavailable` with the reason, which the tests turn into a skip.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: the programs the cluster needs (Debian: apt-get install slurm-wlm munge)
PROGRAMS = (
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "srun",
    "squeue",
    "sinfo",
    "scontrol",
)
#: the one partition, and the node's name (slurmd is started as this node with -N)
PARTITION = "immunotest"
NODE = "localhost"
#: seconds a finished job stays in slurmctld's memory, so ``squeue`` still reports its state
MIN_JOB_AGE = 900


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the test cluster; the message says why."""


def missing_programs() -> list[str]:
    """The programs of :data:`PROGRAMS` that are not on ``PATH`` (or in an sbin folder)."""
    return [name for name in PROGRAMS if _which(name) is None]


def _which(name: str) -> str | None:
    # the daemons live in /usr/sbin, which a non-login PATH may lack
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin:/usr/local/sbin"
    return shutil.which(name, path=path)


def node_hardware() -> str:
    """The node's hardware as ``slurmd -C`` reports it (CPUs, sockets, cores, RealMemory).

    Returns
    -------
    str
        The words of its ``NodeName=`` line after the node name, e.g.
        ``CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105``.
    """
    done = subprocess.run(
        [_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=30
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("NodeName=")), None)
    if done.returncode != 0 or line is None:
        raise SlurmUnavailable(f"slurmd -C did not report the node: {done.stderr.strip()}")
    return " ".join(word for word in line.split() if not word.startswith("NodeName="))


def _free_ports(count: int) -> list[int]:
    """Ports free on localhost now (the daemons bind them a moment later)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def slurm_conf(
    root: Path,
    munge_socket: Path,
    hardware: str,
    ports: tuple[int, int],
    user: str,
    partition: str = PARTITION,
) -> str:
    """The ``slurm.conf`` of a one-node cluster whose files all live under ``root``.

    Parameters
    ----------
    root
        The cluster's folder (state, spool, logs).
    munge_socket
        The socket of the cluster's munged.
    hardware
        The node's hardware words (:func:`node_hardware`).
    ports
        slurmctld's and slurmd's ports on localhost.
    user
        The user the daemons run as (root on a CI machine).
    partition
        The name of the one partition.
    """
    return "\n".join(
        [
            "ClusterName=immunotest",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            f"StateSaveLocation={root}/state",
            f"SlurmdSpoolDir={root}/spool",
            f"SlurmctldPidFile={root}/run/slurmctld.pid",
            f"SlurmdPidFile={root}/run/slurmd.pid",
            f"SlurmctldLogFile={root}/log/slurmctld.log",
            f"SlurmdLogFile={root}/log/slurmd.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            # no cgroups: processes are tracked by their parent pids, tasks are not bound
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={root}/log/jobcomp.log",
            f"MinJobAge={MIN_JOB_AGE}",
            # a node that comes back after a slurmd restart is used again at once
            "ReturnToService=2",
            "SlurmdTimeout=300",
            "InactiveLimit=0",
            "KillWait=10",
            f"NodeName={NODE} NodeAddr=127.0.0.1 {hardware} State=UNKNOWN",
            f"PartitionName={partition} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


@dataclass
class Cluster:
    """A running one-node cluster: its folder, configuration and daemons."""

    root: Path
    conf: Path
    #: munged's socket folder: outside pytest's temporary folders, which only their owner
    #: may enter (munged wants every user able to reach its socket)
    socket_dir: Path
    partition: str = PARTITION
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The environment of a command that uses this cluster (``SLURM_CONF`` set)."""
        path = os.pathsep.join([str(self.root / "bin"), os.environ.get("PATH", ""), "/usr/sbin"])
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def command(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM command against this cluster."""
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=self.env
        )

    def _start(self, name: str, argv: list[str]) -> None:
        # the daemon's own output (it runs in the foreground) beside its log; its own
        # session, so that a signal to the test's process group does not reach it
        with open(self.root / "log" / f"{name}.out", "ab") as out:
            self.daemons[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    def start_munged(self) -> None:
        """Start munged on the cluster's own socket, with a key of its own."""
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            done = self.command(_which("mungekey") or "mungekey", "--create", "--keyfile", str(key))
            if done.returncode != 0:
                raise SlurmUnavailable(f"mungekey could not create a key: {done.stderr.strip()}")
        sock = self.socket_dir / "munge.socket"
        self._start(
            "munged",
            [
                _which("munged") or "munged",
                "--foreground",
                f"--socket={sock}",
                f"--key-file={key}",
                f"--pid-file={self.root}/run/munged.pid",
                f"--log-file={self.root}/log/munged.log",
                f"--seed-file={self.root}/munge/munged.seed",
            ],
        )
        self._wait(lambda: sock.exists(), "munged", 20)

    def start_slurmctld(self) -> None:
        """Start slurmctld (in the foreground, as a child of this process)."""
        self._start("slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-f", str(self.conf)])
        self._wait(lambda: self.command("scontrol", "ping").returncode == 0, "slurmctld", 30)

    def start_slurmd(self) -> None:
        """Start slurmd as node ``localhost`` and wait until the node is idle or busy."""
        argv = [_which("slurmd") or "slurmd", "-D", "-N", NODE, "-f", str(self.conf)]
        self._start("slurmd", argv)
        self.wait_node({"idle", "mixed", "allocated"}, 60)

    def kill_slurmd(self) -> None:
        """Kill slurmd at once (SIGKILL), as a crashed node daemon; running jobs stay."""
        proc = self.daemons.pop("slurmd")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def node_state(self) -> str:
        """The node's state as ``sinfo`` shows it (``idle``, ``mixed``, ``down*``, ...)."""
        done = self.command("sinfo", "--noheader", "--nodes", NODE, "--format", "%T")
        return done.stdout.strip()

    def wait_node(self, states: set[str], timeout: float) -> None:
        """Wait until the node is in one of ``states``; raise with the logs if it is not."""
        self._wait(lambda: self.node_state() in states, "slurmd", timeout)

    def running_jobs(self) -> list[str]:
        """Ids of the jobs running now."""
        done = self.command("squeue", "--noheader", "--states=RUNNING", "--format=%i")
        return done.stdout.split()

    def completed_jobs(self) -> list[dict[str, str]]:
        """The jobs SLURM ran to the end, from its job completion log (one dict per job)."""
        log = self.root / "log" / "jobcomp.log"
        if not log.exists():
            return []
        jobs = []
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
            if "JobId" in fields:
                jobs.append(fields)
        return jobs

    def log(self, name: str) -> str:
        """A daemon's log file (``munged``, ``slurmctld``, ``slurmd``, ``jobcomp``)."""
        path = self.root / "log" / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The end of a daemon's log, for a message."""
        texts = []
        for path in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"):
            if path.exists():
                texts += path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "\n".join(texts)

    def _wait(self, ready, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except subprocess.TimeoutExpired:
                pass  # a daemon that does not answer yet
            proc = self.daemons.get(name)
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.5)
        raise SlurmUnavailable(f"{name} did not come up:\n{self.log_tail(name)}")

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (in that order)."""
        if "slurmctld" in self.daemons:
            self.command("scancel", "--full", f"--partition={self.partition}")
            deadline = time.monotonic() + 30
            while self.running_jobs() and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.daemons.pop(name, None)
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def start_cluster(root: Path, partition: str = PARTITION) -> Cluster:
    """Start a one-node cluster on localhost with all its files under ``root``.

    Parameters
    ----------
    root
        An empty folder, kept for the cluster's life (short: UNIX sockets live in it).
    partition
        The name of the one partition.

    Returns
    -------
    Cluster
        munged, slurmctld and slurmd running, the node idle.

    Raises
    ------
    SlurmUnavailable
        A program is missing or a daemon did not come up (the message says which and why).
    """
    missing = missing_programs()
    if missing:
        raise SlurmUnavailable(
            f"SLURM is not installed ({', '.join(missing)} missing): "
            "apt-get install slurm-wlm munge (as root; .ci/run does it)"
        )
    for folder in ("munge", "state", "spool", "run", "log", "bin"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)  # the key's folder: munged refuses one others may write
    socket_dir = Path(tempfile.mkdtemp(prefix="immuno-munge-"))
    socket_dir.chmod(0o755)
    conf = root / "slurm.conf"
    hardware = node_hardware()
    conf.write_text(
        slurm_conf(
            root,
            socket_dir / "munge.socket",
            hardware,
            tuple(_free_ports(2)),
            getpass.getuser(),
            partition,
        ),
        encoding="utf-8",
    )
    srun = root / "bin" / "srun"
    srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {_which("srun")} "$@"\n', encoding="utf-8")
    srun.chmod(0o755)
    cluster = Cluster(root=root, conf=conf, socket_dir=socket_dir, partition=partition)
    try:
        cluster.start_munged()
        cluster.start_slurmctld()
        cluster.start_slurmd()
        cluster.wait_node({"idle"}, 60)
    except BaseException:
        cluster.stop()
        raise
    return cluster
