"""Real application servers for tests: gunicorn with the production config file, on the
test database, and requests fired at them at the same instant."""

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
# This suite's own port range (TEST_PORT_BASE moves it, so suites run side by side on one
# machine cannot answer each other's health checks).
PORT_BASE = int(os.environ.get("TEST_PORT_BASE", "8100"))
PORTS = range(PORT_BASE, PORT_BASE + 100)


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@contextmanager
def gunicorn(
    database_url: str,
    log_path: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    settings: str = "config.settings.test",
    **environ: str,
) -> Iterator[str]:
    """A real gunicorn with the production config file, on the given database (``environ``:
    more environment variables, e.g. ``GUNICORN_ACCESSLOG="-"``)."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": database_url,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        **environ,
    }
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass  # not listening yet, or its workers are still booting
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def fire_at_once(
    urls: list[str],
    params_list: list[dict[str, str]],
    *,
    path: str = "/postback",
    paths: list[str] | None = None,
) -> list[requests.Response]:
    """Release one request per (url, params) at the same instant, each on its own thread
    (to ``path``, or to each one's in ``paths``; ``/postback`` unless told)."""
    barrier = threading.Barrier(len(urls))

    def one(url: str, params: dict[str, str], to: str) -> requests.Response:
        with requests.Session() as session:
            barrier.wait()
            return session.get(f"{url}{to}", params=params, timeout=60)

    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return list(pool.map(one, urls, params_list, paths or [path] * len(urls)))


def postgres_url() -> str:
    settings = connection.settings_dict
    auth = quote(settings["USER"] or "", safe="")
    if settings.get("PASSWORD"):
        auth += ":" + quote(settings["PASSWORD"], safe="")
    host = settings["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{settings['PORT'] or 5432}/{settings['NAME']}"


def answers(responses: list[requests.Response]) -> Counter:
    return Counter((r.status_code, r.json()["reason"]) for r in responses)


def sqlite_database(path: Path, setup: str) -> tuple[str, list[str]]:
    """A migrated SQLite file at ``path`` for servers in other processes: its URL, and what
    ``setup`` (Python run there with Django set up) printed, split into words."""
    url = f"sqlite:///{path}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    made = subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + setup],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return url, made.stdout.split()
