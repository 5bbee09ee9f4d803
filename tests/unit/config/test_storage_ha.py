"""`storage:` names one engine; `ha:` needs the shared one."""

from __future__ import annotations

import pytest

from sentinel.config import parse
from sentinel.config.loader import ConfigError

URL = "postgresql://sentinel@db:5432/sentinel"


def test_url_selects_postgresql_and_ha_reads_its_settings() -> None:
    config = parse(f'storage: {{url: "{URL}"}}\nha: {{enabled: true, lease: 10s, replica: r1}}\n')
    assert config.storage.url is not None and config.storage.url.get_secret_value() == URL
    assert (config.ha.enabled, config.ha.lease, config.ha.replica) == (True, 10.0, "r1")
    assert URL not in repr(config.storage)  # a password in the URL stays out of logs


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (f'storage: {{path: x.db, url: "{URL}"}}', "storage: set either path (SQLite) or url"),
        ('storage: {url: "mysql://db/x"}', "storage.url: expected a postgresql:// URL"),
        ("ha: {enabled: true}", "ha.enabled needs storage.url"),
        (f'storage: {{url: "{URL}"}}\nha: {{enabled: true, lease: 0s}}', "ha.lease"),
        (f'storage: {{url: "{URL}"}}\nha: {{enabled: true, leader: x}}', "ha.leader: unknown key"),
    ],
)
def test_what_is_refused(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text + "\n")
    assert error in str(e.value), str(e.value)


def test_a_missing_driver_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'sentinel-celery\[postgres\]'"):
        parse(f'storage: {{url: "{URL}"}}\n')
