"""Real services for tests: a throwaway PostgreSQL cluster, and the CI rule for missing ones.

Outside CI a test whose service is missing skips with a reason naming it; under CI (CI=true)
the same test fails, so a green CI run always means every service test ran.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> None:
    """Skip (or, under CI, fail) because ``what`` is not available here."""
    message = f"{what} is not available on this machine"
    if under_ci():
        pytest.fail(f"{message}, and under CI every service test must run", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """A PostgreSQL server in a temporary folder on a free loopback port.

    initdb refuses to run as root, so as root the cluster runs as the ``postgres`` user that
    Debian's package creates.
    """

    PASSWORD = "shipml-test"

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None:
            missing("PostgreSQL (initdb/pg_ctl; apt-get install postgresql)")
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="shipml-pg-"))
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            shutil.chown(self.dir, user=self.user)
            os.chmod(self.dir, 0o700)

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        data = self.dir / "data"
        pwfile = self.dir / "pw"
        pwfile.write_text(self.PASSWORD)
        if self.user:
            shutil.chown(pwfile, user=self.user)
        # Password auth over TCP, so tests can check that a wrong password is refused.
        self._run("initdb", "-D", str(data), "-U", "shipml", "--auth-local=trust",
                  "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        return f"postgresql+psycopg://shipml:{self.PASSWORD}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_port(port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False
