"""An embedded PostgreSQL under ``./var/`` for the quick start, when no database URL is set.

Why the machine's own server binaries (Debian's ``postgresql`` package,
``/usr/lib/postgresql/*/bin``) rather than a wheel that bundles PostgreSQL (``pgserver``): they
are the same build production runs, they get security updates from the OS, and the only wheel
candidate has not been released since 2024. ``initdb`` and ``postgres`` refuse to run as root,
so as root every server command runs as the ``postgres`` OS user (``runuser``), which also owns
the data directory.

The server listens on 127.0.0.1 only, with trust authentication: a development database, never a
production one. Production sets ``database.url`` / ``PAYAM_DATABASE_URL``, which always wins.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE = "payam"


class EmbeddedPostgresError(RuntimeError):
    pass


def find_bindir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2] or 0)
    )
    for c in reversed(candidates):
        if (Path(c) / "initdb").exists():
            return Path(c)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin): "
        "install Debian's 'postgresql' package, or set database.url / PAYAM_DATABASE_URL"
    )


class EmbeddedPostgres:
    def __init__(self, directory: str | os.PathLike[str], port: int) -> None:
        self.directory = Path(directory).resolve()
        self.data = self.directory / "data"
        self.logfile = self.directory / "postgres.log"
        self.port = port
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")
        if check and proc.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        return proc

    def _prepare_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            pg = pwd.getpwnam("postgres")
            os.chown(self.directory, pg.pw_uid, pg.pw_gid)
        self.directory.chmod(0o700)
        if (
            self._as_root
            and subprocess.run(
                ["runuser", "-u", "postgres", "--", "test", "-w", str(self.directory)], check=False
            ).returncode
            != 0
        ):
            raise EmbeddedPostgresError(
                f"the postgres OS user cannot reach {self.directory}: every parent directory "
                "must be searchable by it (chmod o+x), or set database.embedded_dir elsewhere"
            )

    def is_running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return (
            self._run(
                str(find_bindir() / "pg_ctl"), "status", "-D", str(self.data), check=False
            ).returncode
            == 0
        )

    def ensure_running(self) -> str:
        """Initialise (once), start (if stopped) and create the database; return its URL."""
        bindir = find_bindir()
        if not (self.data / "PG_VERSION").exists():
            self._prepare_directory()
            log.info("initialising embedded PostgreSQL in %s", self.data)
            self._run(
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(
                    "\n# Payam Iran embedded development server\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    # No Unix socket: the data directory may sit on a path too long for one.
                    "unix_socket_directories = ''\n"
                    "timezone = 'UTC'\n"
                    "max_connections = 100\n"
                )
        if not self.is_running():
            log.info("starting embedded PostgreSQL on 127.0.0.1:%d", self.port)
            self._run(
                str(bindir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data),
                "-l",
                str(self.logfile),
            )
        exists = self._psql(bindir, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")  # noqa: S608
        if exists.strip() != "1":
            self._psql(bindir, f"CREATE DATABASE {DATABASE}")
        return self.url

    def _psql(self, bindir: Path, sql: str) -> str:
        proc = self._run(
            str(bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            sql,
        )
        return proc.stdout

    def stop(self) -> bool:
        if not self.is_running():
            return False
        self._run(str(find_bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))
        return True
