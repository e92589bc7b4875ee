"""A throwaway PostgreSQL cluster for the benchmarks, from this machine's binaries.

Debian's ``postgresql`` package (``apt-get install postgresql``) provides ``initdb``
and ``pg_ctl``; the cluster lives in a temporary folder, listens on a free loopback
port, trusts local connections and runs as the ``postgres`` user when we are root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``, or None where PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Run a fresh cluster while the ``with`` block runs; yields the URL of its database."""
    folder = binaries()
    if folder is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))  # the postgres user must reach it
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data = str(root / "data")

    def run(program: str, *args: str) -> None:
        command = [*as_postgres, str(folder / program), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        run("initdb", "-D", data, "-A", "trust", "-U", "bench", "--no-sync", "-E", "UTF8")
        run("pg_ctl", "-D", data, "-o", options, "-l", str(root / "log"), "-w", "start")
        try:
            yield f"postgresql+psycopg://bench@127.0.0.1:{port}/postgres"
        finally:
            run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
