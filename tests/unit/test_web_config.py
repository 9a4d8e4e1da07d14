"""The web app's settings: where it calls the API, the address people open, the cookie key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.web.config import load
from shared.config import ConfigError
from shared.config import load as load_settings


def test_up_calls_its_own_port_and_a_lone_web_app_the_api_port(tmp_path: Path) -> None:
    config = load_settings({"SERVICEMONTH_HOME": str(tmp_path)})
    up = load(config, api_url="http://127.0.0.1:9000", port=9000)
    assert (up.api_url, up.public_url, up.secure) == (
        "http://127.0.0.1:9000",
        "http://127.0.0.1:9000",
        False,
    )
    alone = load(config, port=8005)
    assert (alone.api_url, alone.public_url) == ("http://127.0.0.1:8000", "http://127.0.0.1:8005")
    # the key is made once and read back the same by the next process
    assert alone.session_key == up.session_key and len(up.session_key) == 64
    assert (tmp_path / "keys" / "web-session.key").stat().st_mode & 0o077 == 0


def test_behind_https_the_cookie_is_secure(tmp_path: Path) -> None:
    config = load_settings(
        {
            "SERVICEMONTH_HOME": str(tmp_path),
            "SERVICEMONTH_PUBLIC_URL": "https://servicemonth.example.gov.cn/",
            "SERVICEMONTH_API_URL": "https://servicemonth.example.gov.cn",
        }
    )
    web = load(config)
    assert web.secure and web.public_url == "https://servicemonth.example.gov.cn"


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("SERVICEMONTH_API_URL", "ftp://x", "SERVICEMONTH_API_URL"),
        ("SERVICEMONTH_PUBLIC_URL", "servicemonth.example", "SERVICEMONTH_PUBLIC_URL"),
        ("SERVICEMONTH_WEB_SESSION_KEY_FILE", "/nonexistent/key", "WEB_SESSION_KEY_FILE"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_its_key(
    tmp_path: Path, key: str, value: str, named: str
) -> None:
    # a URL is checked with every other setting, the key file when the web app reads it
    with pytest.raises(ConfigError, match=named):
        load(load_settings({"SERVICEMONTH_HOME": str(tmp_path), key: value}))


def test_a_short_session_key_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("too short")
    config = load_settings(
        {"SERVICEMONTH_HOME": str(tmp_path), "SERVICEMONTH_WEB_SESSION_KEY_FILE": str(short)}
    )
    with pytest.raises(ConfigError, match="fewer than 32"):
        load(config)
