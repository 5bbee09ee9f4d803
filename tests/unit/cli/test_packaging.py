"""The deployment files say what they mean: checked by parsing them, and by running the
entrypoint's exact argv (no Docker engine here) and systemd's own verifier where present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.cli import _parser

ROOT = Path(__file__).resolve().parents[3]


def _instruction(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(rf"^{name}\s+(.*)$", text, re.MULTILINE)
    assert match, f"Dockerfile has no {name}"
    return match.group(1)


def test_dockerfile_uses_exec_form_so_signals_reach_the_daemon() -> None:
    entrypoint = json.loads(_instruction("ENTRYPOINT"))
    cmd = json.loads(_instruction("CMD"))
    assert entrypoint == ["sentinel"]
    args = _parser().parse_args(cmd)
    assert args.command == "run" and args.log_format == "json"


def test_dockerfile_runs_as_a_non_root_user_with_a_state_volume_and_healthcheck() -> None:
    assert _instruction("USER") not in ("root", "0")
    assert "/var/lib/sentinel" in _instruction("VOLUME")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD .*/healthz", dockerfile, re.MULTILINE)
    assert "SENTINEL_CONFIG=/etc/sentinel/rules.yaml" in (ROOT / "Dockerfile").read_text()


def test_the_image_can_be_an_ha_replica() -> None:
    # The README's HA pair runs this image with storage.url: it needs the PostgreSQL driver.
    assert "[postgres]" in _instruction("RUN")


def test_the_container_entrypoint_validates_the_shipped_config(tmp_path: Path) -> None:
    # What the image runs, minus Docker: the console script on the config the image ships.
    env = {
        "SENTINEL_CONFIG": str(ROOT / "rules.example.yaml"),
        "PATH": str(Path(sys.executable).parent),
    }
    result = subprocess.run(
        [sys.executable, "-m", "sentinel", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_systemd_unit_reloads_with_hup_and_is_hardened() -> None:
    unit = (ROOT / "systemd" / "sentinel.service").read_text()
    for line in (
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=sentinel",
    ):
        assert line in unit


def _unit_values(key: str) -> list[str]:
    unit = (ROOT / "systemd" / "sentinel.service").read_text()
    return re.findall(rf"^{key}=(.*)$", unit, re.MULTILINE)


def test_systemd_unit_documentation_is_the_readme_its_install_step_copies() -> None:
    (doc,) = _unit_values("Documentation")
    assert doc.startswith("file://")
    installed = doc.removeprefix("file://")
    unit = (ROOT / "systemd" / "sentinel.service").read_text()
    assert f"README.md {installed}" in unit  # the `install -D ... README.md <path>` line
    assert (ROOT / "README.md").exists()


def test_systemd_unit_runs_in_its_state_directory_and_documents_credentials() -> None:
    assert _unit_values("WorkingDirectory") == ["/var/lib/sentinel"]
    assert _unit_values("StateDirectory") == ["sentinel"]
    unit = (ROOT / "systemd" / "sentinel.service").read_text()
    assert "LoadCredential=" in unit and "${CREDENTIALS_DIRECTORY}" in unit


def test_license_is_the_mit_license_pyproject_declares() -> None:
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the sentinel authors" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    sentinel_bin = Path(sys.executable).parent / "sentinel"
    unit = (ROOT / "systemd" / "sentinel.service").read_text()
    unit = unit.replace("/opt/sentinel/bin/sentinel", str(sentinel_bin))
    path = tmp_path / "sentinel.service"
    path.write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line for line in (result.stdout + result.stderr).splitlines() if "sentinel.service" in line
    ]
    assert not problems, problems


def test_a_sentinel_on_sqlite_imports_no_postgresql_driver(tmp_path: Path) -> None:
    """psycopg and its pool are ~10 MiB of a daemon's memory: only storage.url loads them."""
    code = f"""
import sys
from sentinel.app import Sentinel
from sentinel.config import parse
s = Sentinel(parse('''
storage: {{path: "{tmp_path / "s.db"}"}}
rules:
  - {{name: A, kind: no_live_workers}}
''', env={{}}))
s.db.close()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool")))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
