"""The Slurm profile on a real single-node Slurm: the README's command runs the
tiny suite through sbatch, and a rerun submits nothing.

The test starts its own cluster in a temporary folder: munged (own key and
socket), MariaDB (own data folder and socket), slurmdbd (so that `sacct`, which
the plugin polls, works), slurmctld and slurmd, on free 127.0.0.1 ports; it
stops every daemon it started by its pid, also when it fails. It needs root
(slurmd runs jobs as their user) and the Debian packages slurm-wlm, slurmdbd,
munge and mariadb-server; without them it is skipped, saying why.

    python -m pytest -m services tests/test_slurm.py -s

Deselected from the default run (`-m 'not services'` in pyproject.toml).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import copy_project, e2e_env
from hetmtl import paths
from hetmtl.params import load_params

pytestmark = pytest.mark.services
BIN = Path(sys.executable).parent
DAEMONS = ["munged", "mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "slurmctld", "slurmd", "sbatch",
           "srun", "sacct", "sacctmgr", "sinfo"]
CLUSTER, ACCOUNT = "hetmtltest", "hetmtl_test"
# The test cluster's partitions: a default one the profile must NOT use, and
# the two that the test names in the profile's site settings.
DEFAULT_PARTITION, CPU_PARTITION, GPU_PARTITION = "debug", "hetmtl_cpu", "hetmtl_gpu"


def _missing() -> str | None:
    absent = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if absent:
        return (f"Slurm test cluster: not installed: {', '.join(absent)} "
                "(apt-get install slurm-wlm slurmdbd munge mariadb-server)")
    if os.geteuid() != 0:
        return "Slurm test cluster: needs root (slurmd and munged run as root here)"
    return None


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    """munged, mariadbd, slurmdbd, slurmctld and slurmd, everything under `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.host = socket.gethostname()
        (self.ctld_port, self.slurmd_port, self.dbd_port, self.db_port) = _free_ports(4)
        root.mkdir(mode=0o700, exist_ok=True)
        for d in ["munge", "db", "state", "spool", "log", "run"]:
            (root / d).mkdir(mode=0o700)
        self.munge_socket = root / "munge" / "munge.socket"
        self.db_socket = root / "run" / "mariadb.sock"
        self.conf = root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    # -- start ---------------------------------------------------------------
    def _start(self, name: str, cmd: list[str], ready, timeout: float = 60):
        with open(self.root / "log" / f"{name}.out", "w") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True)
        self.procs.append((name, proc))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}): {self.log_tail(name)}")
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after {timeout:.0f} s: {self.log_tail(name)}")

    def log_tail(self, name: str, n: int = 2000) -> str:
        text = ""
        for f in sorted((self.root / "log").glob(f"{name}*")):
            text += f"\n--- {f.name}\n" + f.read_text(errors="replace")[-n:]
        return text

    def _ok(self, cmd: list[str]) -> bool:
        return subprocess.run(cmd, env=self.env, capture_output=True, check=False).returncode == 0

    def run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc

    def job_env(self, env: dict) -> dict:
        """`env` with this cluster's config for the client commands. Inside a job,
        the jobstep plugin (0.6.1) runs the rule through `srun` with every
        SLURM_* variable but the job's ids removed, SLURM_CONF included: srun then
        looks for /etc/slurm/slurm.conf or a configless server, as it finds them
        on a real cluster. The test cluster's config is in its folder, so an
        `srun` first on PATH sets SLURM_CONF again and runs the real one."""
        wrapper = self.root / "bin" / "srun"
        if not wrapper.exists():
            wrapper.parent.mkdir()
            wrapper.write_text(f"#!/bin/sh\nSLURM_CONF={self.conf} exec {shutil.which('srun')} \"$@\"\n")
            wrapper.chmod(0o755)
        return dict(env, SLURM_CONF=str(self.conf), PATH=f"{wrapper.parent}{os.pathsep}{env['PATH']}")

    def start(self):
        self._munge()
        self._mariadb()
        self._write_conf()
        self._start("slurmdbd", [_exe("slurmdbd"), "-D"],
                    lambda: self._ok(["sacctmgr", "-n", "list", "cluster"]))
        self.run(["sacctmgr", "-i", "add", "cluster", CLUSTER])
        self.run(["sacctmgr", "-i", "add", "account", ACCOUNT, f"cluster={CLUSTER}"])
        self.run(["sacctmgr", "-i", "add", "user", "root", f"account={ACCOUNT}", f"cluster={CLUSTER}"])
        self._start("slurmctld", [_exe("slurmctld"), "-D", "-c", "-i"], lambda: self._ok(["sinfo"]))
        self._start("slurmd", [_exe("slurmd"), "-D", "-N", self.host],
                    lambda: "idle" in self.run(["sinfo", "-h", "-o", "%T"], check=False).stdout, timeout=90)

    def _munge(self):
        key = self.root / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        m = self.root / "munge"
        self._start("munged", [_exe("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={m / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"],
                    lambda: self.munge_socket.exists())

    def _mariadb(self):
        datadir = self.root / "db"
        self.run([_exe("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
                  "--auth-root-authentication-method=socket", "--skip-test-db"])
        self._start("mariadbd", [_exe("mariadbd"), "--no-defaults", f"--datadir={datadir}", "--user=root",
                                 f"--socket={self.db_socket}", f"--port={self.db_port}", "--bind-address=127.0.0.1",
                                 f"--pid-file={self.root / 'run' / 'mariadb.pid'}",
                                 f"--log-error={self.root / 'log' / 'mariadbd.log'}",
                                 "--innodb-buffer-pool-size=64M", "--innodb-use-native-aio=0",
                                 "--innodb-lock-wait-timeout=900", "--skip-name-resolve"],
                    lambda: self._ok(["mariadb", f"--socket={self.db_socket}", "-e", "select 1"]))
        self.db_password = secrets.token_hex(8)
        sql = "".join(f"CREATE USER 'slurm'@'{h}' IDENTIFIED BY '{self.db_password}'; "
                      f"GRANT ALL ON *.* TO 'slurm'@'{h}'; " for h in ("127.0.0.1", "localhost"))
        self.run(["mariadb", f"--socket={self.db_socket}", "-e", sql])

    def _write_conf(self):
        r = self.root
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024  # MemTotal, MB
        cpus = os.cpu_count()
        self.conf.write_text(f"""\
ClusterName={CLUSTER}
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}
SlurmdPidFile={r / 'run' / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={self.dbd_port}
AccountingStoragePass={self.munge_socket}
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
SlurmctldDebug=info
SlurmdDebug=info
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName={DEFAULT_PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
PartitionName={CPU_PARTITION} Nodes={self.host} MaxTime=INFINITE State=UP
PartitionName={GPU_PARTITION} Nodes={self.host} MaxTime=INFINITE State=UP
""")
        dbd = r / "slurmdbd.conf"  # next to slurm.conf: where slurmdbd looks (SLURM_CONF's folder)
        dbd.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
DbdHost={self.host}
DbdAddr=127.0.0.1
DbdPort={self.dbd_port}
SlurmUser=root
PidFile={r / 'run' / 'slurmdbd.pid'}
LogFile={r / 'log' / 'slurmdbd.log'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser=slurm
StoragePass={self.db_password}
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)

    # -- stop ----------------------------------------------------------------
    def stop(self):
        """Every daemon this cluster started, by its pid, newest first."""
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# -- the test ------------------------------------------------------------------
SITE = {"account": ACCOUNT, "mem_mb": 1000, "threads": {"relations": 2}}


def set_site_settings(proj: Path):
    """What the README tells a user to edit, set to the test cluster's names:
    the account, the two partitions, the memory; and the CPU threads of the
    relations jobs (2, so that the test sees --cpus-per-task follow set-threads)."""
    prof = proj / "workflow" / "profiles" / "slurm"
    cfg = yaml.safe_load((prof / "config.yaml").read_text())
    cfg["default-resources"]["slurm_account"] = SITE["account"]
    cfg["default-resources"]["mem_mb"] = SITE["mem_mb"]
    for rule in cfg["set-resources"]:
        cfg["set-resources"][rule]["mem_mb"] = SITE["mem_mb"]
    cfg["set-threads"].update(SITE["threads"])
    (prof / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    parts = yaml.safe_load((prof / "partitions.yaml").read_text())["partitions"]
    assert list(parts) == ["cpu", "gpu"], parts  # the names the README says to replace
    renamed = {CPU_PARTITION: parts["cpu"], GPU_PARTITION: parts["gpu"]}
    (prof / "partitions.yaml").write_text(yaml.safe_dump({"partitions": renamed}))
    return cfg


def sacct(cluster: SlurmCluster) -> list[dict]:
    """Every job of the test cluster (allocations, not steps)."""
    fields = ["JobID", "JobName", "Comment", "Partition", "Account", "AllocCPUS", "ReqMem", "State", "Start", "End",
              "ElapsedRaw"]
    out = cluster.run(["sacct", "-a", "-X", "-n", "-P", "-S", "2000-01-01", "-o", ",".join(fields)]).stdout
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]


def snakemake(proj: Path, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [str(BIN / "snakemake"), "--profile", "workflow/profiles/slurm", "--config", "suite=tiny"]
    start = time.time()
    proc = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True, timeout=1500, check=False)
    return proc, time.time() - start


@pytest.fixture()
def cluster():
    """A started cluster in a short temporary folder (a socket's path must stay
    under 108 bytes), removed with its daemons at the end."""
    import tempfile

    reason = _missing()
    if reason:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="hetmtl-slurm-"))
    c = SlurmCluster(root)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(1800)
def test_the_tiny_suite_runs_through_slurm_and_a_rerun_submits_nothing(cluster, tmp_path):
    started = time.time()
    proj = copy_project(tmp_path / "proj")
    cfg = set_site_settings(proj)
    env = cluster.job_env(e2e_env())
    proc, seconds = snakemake(proj, env)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{log[-6000:]}\n{cluster.log_tail('slurmctld')}")

    # every job but the target rule went through sbatch, and Slurm ran it
    stats = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+(\d+)", log, re.DOTALL)
    counts = {name: int(n) for name, n in (line.split() for line in stats.group(1).splitlines())}
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", log))
    run_uuid = re.search(r"SLURM run ID: (\S+)", log).group(1)
    jobs = sacct(cluster)
    assert all(j["JobName"] == run_uuid for j in jobs), {j["JobName"] for j in jobs}
    assert {j["JobID"] for j in jobs} == submitted
    assert len(jobs) == sum(counts.values()) - counts["all"], (len(jobs), counts)
    per_rule = {}
    for j in jobs:
        rule = re.match(r"rule_([a-z_]+?)(?:_wildcards_|$)", j["Comment"]).group(1)
        per_rule[rule] = per_rule.get(rule, 0) + 1
        threads = cfg["set-threads"].get(rule, 1)
        assert (j["State"], j["Partition"], j["Account"], j["AllocCPUS"], j["ReqMem"]) == \
            ("COMPLETED", CPU_PARTITION, ACCOUNT, str(threads), f"{SITE['mem_mb']}M"), j
    assert per_rule == {k: v for k, v in counts.items() if k != "all"}
    assert "--gpus" not in log and "--gres" not in log  # tiny trains on CPUs

    # the tables, and every receipt's run in MLflow
    from mlflow.tracking import MlflowClient

    params = load_params(proj)
    for table in list(params["tables"]) + ["table6"]:
        for ext in ("md", "csv", "tex"):
            assert (proj / paths.table_file("tiny", table, ext)).stat().st_size > 0, (table, ext)
    receipts = sorted((proj / "results" / "tiny").rglob("receipt.json"))
    assert len(receipts) == len(params.runs("tiny")) + len(params.sweep_runs("tiny"))
    client = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    for receipt in receipts:
        run = client.get_run(json.loads(receipt.read_text())["run_id"])
        assert run.info.status == "FINISHED", receipt

    # a rerun submits nothing
    again, seconds_again = snakemake(proj, env)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "Nothing to be done" in again.stdout + again.stderr
    assert "submitted with SLURM jobid" not in again.stdout + again.stderr
    assert len(sacct(cluster)) == len(jobs)
    from datetime import datetime

    span = (max(datetime.fromisoformat(j["End"]) for j in jobs)
            - min(datetime.fromisoformat(j["Start"]) for j in jobs)).total_seconds()
    print(f"\nSlurm: {len(jobs)} jobs through sbatch ({per_rule}); {sum(int(j['ElapsedRaw']) for j in jobs)} s "
          f"of job time, first start to last end {span:.0f} s; snakemake {seconds:.0f} s, rerun {seconds_again:.0f} s; "
          f"test {time.time() - started:.0f} s without the cluster's start")
