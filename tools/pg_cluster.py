"""A throwaway PostgreSQL server for the shared-journal tests (Debian's ``postgresql`` package).

``GROK_IMAGINE_TEST_PG_URL`` names a server to reuse (its user must be allowed to CREATE DATABASE;
``.ci/run`` exports one); otherwise a cluster is made in a temporary folder and started on a free
127.0.0.1 port. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user. ``why_not()`` says in one line why no server can be had, for the skip reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PG_URL_ENV = "GROK_IMAGINE_TEST_PG_URL"
PASSWORD = "pg-test-password-d41f7a"  # only for the throwaway cluster; asserted never to leak
START_TIMEOUT_S = 60


def driver_missing() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (the pack's postgres extra)"
    return None


def binaries() -> Path | None:
    """The newest PostgreSQL bin folder with initdb and pg_ctl."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def why_not() -> str | None:
    """None if a server can be had, else the reason (for pytest.skip)."""
    missing = driver_missing()
    if missing:
        return missing
    if os.environ.get(PG_URL_ENV):
        return None
    if binaries() is None:
        return f"no PostgreSQL server binaries (apt-get install postgresql, or set {PG_URL_ENV})"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL refuses to run as root"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


DIR_PREFIX = "grok-pg-"
OWNER_FILE = "owner.pid"


def reap_stale() -> list[Path]:
    """Stop and remove throwaway clusters whose owning process has ended (a test run killed by
    a timeout never reaches its teardown); the folders of live runs are left alone."""
    reaped = []
    for folder in Path(tempfile.gettempdir()).glob(DIR_PREFIX + "*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being made
        if _alive(owner):
            continue
        try:
            Cluster(folder).destroy()
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            pass  # already gone: its folder is removed all the same
        reaped.append(folder)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """``Cluster().start()``: a fresh server; ``stop()`` / ``start()`` again; ``destroy()``."""

    def __init__(self, existing: Path | None = None, owner_pid: int | None = None) -> None:
        bin_dir = binaries()
        assert bin_dir is not None, why_not()
        self.bin = bin_dir
        if existing is None:
            reap_stale()
        self.dir = existing or Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        if existing is None:  # who to outlive: a run killed before its teardown leaves a stray
            (self.dir / OWNER_FILE).write_text(str(owner_pid or os.getpid()))
        self.data = self.dir / "data"
        self.sockets = self.dir / "sock"
        self.log = self.dir / "server.log"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self._made = existing is not None

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()} {log[-2000:]}")

    def _make(self) -> None:
        self.sockets.mkdir()
        password_file = self.dir / "pw"
        password_file.write_text(PASSWORD + "\n")
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
            for path in (self.sockets, password_file):
                shutil.chown(path, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--no-sync", "-E", "UTF8",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
        )  # fmt: skip
        password_file.unlink()
        self._made = True

    def start(self, *, durable: bool = False) -> Cluster:
        """``durable``: fsync on, as a production server runs (the benchmark); tests skip it."""
        if not self._made:
            self._make()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.sockets}"
            f" -c fsync={'on' if durable else 'off'} -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"


def new_database(server_url: str) -> str:
    """A fresh, empty database on the server; its URL."""
    import psycopg

    name = f"grok_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(server_url: str, database_url: str) -> None:
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str]) -> int:
    """``python tools/pg_cluster.py start [OWNER_PID]`` prints shell exports for a started
    throwaway server, kept while OWNER_PID (default: the caller) lives
    (nothing, and the reason on stderr, when none can be had); ``stop DIR`` stops and removes it.
    ``.ci/run`` uses it so the whole suite shares one server."""
    import shlex

    if argv[:1] == ["start"]:
        reason = why_not() if not os.environ.get(PG_URL_ENV) else "a server is already given"
        if reason:
            print(f"shared-journal tests: no PostgreSQL server started ({reason})", file=sys.stderr)
            return 0
        owner = int(argv[1]) if len(argv) > 1 else os.getppid()
        cluster = Cluster(owner_pid=owner)
        try:
            cluster.start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            cluster.destroy()
            print(f"shared-journal tests: PostgreSQL did not start ({exc})", file=sys.stderr)
            return 0
        print(f"export {PG_URL_ENV}={shlex.quote(cluster.server_url)}")
        print(f"export GROK_IMAGINE_TEST_PG_DIR={shlex.quote(str(cluster.dir))}")
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        folder = Path(argv[1])
        # Only a folder this tool made is removed: an empty or mistyped argument (a shell
        # variable that was never set) would otherwise delete the current directory.
        if not (folder.name.startswith(DIR_PREFIX) and (folder / OWNER_FILE).is_file()):
            print(f"pg_cluster.py stop: {argv[1]!r} is not a throwaway cluster", file=sys.stderr)
            return 2
        Cluster(folder).destroy()
        return 0
    print("usage: pg_cluster.py start [OWNER_PID] | stop DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
