import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings.base import database_config

ROOT = Path(__file__).resolve().parent.parent


def test_sqlite_url_gets_wal_immediate_transactions_and_a_busy_timeout():
    config = database_config("sqlite:////tmp/clicktrail-test.sqlite3")

    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "/tmp/clicktrail-test.sqlite3"
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["timeout"] >= 5


def test_postgres_url_gets_persistent_checked_connections():
    config = database_config("postgres://clicktrail:s3cret@db.internal:6432/tracking")

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 6432, "tracking")
    assert (config["USER"], config["PASSWORD"]) == ("clicktrail", "s3cret")
    assert config["CONN_MAX_AGE"] > 0
    assert config["CONN_HEALTH_CHECKS"] is True


def test_postgres_connections_prepare_the_hot_paths_statements_unless_switched_off(monkeypatch):
    url = "postgres://clicktrail@db.internal:5432/tracking"
    assert database_config(url)["OPTIONS"]["prepare_threshold"] is not None

    monkeypatch.setenv("CONN_PREPARED_STATEMENTS", "False")

    assert "prepare_threshold" not in database_config(url)["OPTIONS"]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DEBUG")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="k" * 20 + "a-real-looking-secret-key-0123456789-abcdefghij",
        ALLOWED_HOSTS="track.example.com",
        DEBUG="False",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = run_manage("check", DJANGO_SETTINGS_MODULE="config.settings.production", SECRET_KEY="")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("value", ["Europe/Berlin", "UTC"])
def test_time_zone_comes_from_the_environment(value):
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.TIME_ZONE)",
        TIME_ZONE=value,
    )

    assert result.stdout.strip().splitlines()[-1] == value
