"""Requests to the application in a separate process whose database is unreachable."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def get_with_database_down(path: str, params: dict[str, str] | None = None) -> dict:
    """GET ``path`` through Django's test client in a process whose DATABASE_URL points at a
    port where nothing listens; returns the status, the Retry-After header, the JSON and
    what the process wrote to stderr (its logs)."""
    script = (
        "import django, json, sys; django.setup();"
        "from django.test import Client;"
        "r = Client().get(sys.argv[1], json.loads(sys.argv[2]));"
        "print(json.dumps({'status': r.status_code, 'retry': r.get('Retry-After'),"
        " 'body': r.json()}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere",
    }
    result = subprocess.run(
        [sys.executable, "-c", script, path, json.dumps(params or {})],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "stderr": result.stderr}
