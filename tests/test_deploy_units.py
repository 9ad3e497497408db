"""deploy/systemd: the units systemd would run, checked by systemd itself where it can."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import ROOT

UNITS = ROOT / "deploy" / "systemd"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case sensitive
    parser.read_string((UNITS / name).read_text().replace("\\\n", " "))
    return parser


def test_gunicorn_runs_the_production_settings_and_config_file_behind_nginx():
    service = unit("clicktrail-web.service")["Service"]

    assert "gunicorn -c config/gunicorn.py" in service["ExecStart"]
    assert service["ExecStart"].split()[-1] == "config.wsgi"
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in service["Environment"]
    assert service["EnvironmentFile"] == "/etc/clicktrail/env"
    assert (ROOT / "config" / "gunicorn.py").exists()


def test_the_workers_and_the_retention_timer_run_their_commands():
    deliveries = unit("clicktrail-deliveries@.service")["Service"]
    prune = unit("clicktrail-prune.service")["Service"]
    timer = unit("clicktrail-prune.timer")["Timer"]

    assert deliveries["ExecStart"].endswith("manage.py deliver_postbacks")
    assert deliveries["Restart"] == "always"
    assert prune["ExecStart"].endswith("manage.py prune --apply")
    assert prune["Type"] == "oneshot"
    assert timer["OnCalendar"] and timer["Persistent"] == "true"


def test_the_early_events_sweep_runs_every_minute():
    sweep = unit("clicktrail-kept-postbacks.service")["Service"]
    timer = unit("clicktrail-kept-postbacks.timer")["Timer"]

    assert sweep["ExecStart"].endswith("manage.py kept_postbacks")
    assert sweep["Type"] == "oneshot"
    assert timer["OnCalendar"] == "*-*-* *:*:00"


def test_the_environment_example_names_every_setting_production_needs():
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / "deploy" / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }

    assert {"SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "TRACKING_BASE_URL"} <= names
    assert "USE_X_FORWARDED_FOR" in names


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_finds_nothing_wrong_with_the_units(tmp_path: Path):
    # The units name /srv/clicktrail; here they run this checkout's virtualenv instead.
    for path in UNITS.iterdir():
        text = path.read_text().replace("/srv/clicktrail/.venv", str(ROOT / ".venv"))
        (tmp_path / path.name).write_text(text)

    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(map(str, tmp_path.iterdir()))],
        capture_output=True,
        text=True,
    )

    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == "", checked.stderr
