"""Settings are read in one place: embedded defaults, prefixed keys, errors naming the key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shared.config import SERVICES, ConfigError, Settings, load


def settings_in(home: Path, **keys: str) -> Settings:
    """Settings for a dict environment: ``FOO="x"`` stands for ``SERVICEMONTH_FOO=x``."""
    env = {"SERVICEMONTH_HOME": str(home)}
    env.update({f"SERVICEMONTH_{key}": value for key, value in keys.items()})
    return load(env)


# --- the embedded default ----------------------------------------------------------------


def test_embedded_default_gives_each_service_its_own_sqlite_file_under_home(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path)

    urls = {service: settings.database_url(service) for service in SERVICES}

    assert urls == {service: f"sqlite:///{tmp_path / f'{service}.db'}" for service in SERVICES}


def test_embedded_default_uses_the_filesystem_broker_rooted_in_home(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)

    assert settings.broker_url() == "sfs://"
    assert settings.embedded_broker
    assert settings.broker_options() == {"root": str(tmp_path / "broker")}


def test_embedded_default_is_the_city_deployment_of_the_2016_campaign(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)

    assert (settings.district, settings.deployment) == ("410300", "410300")
    assert settings.campaign == "servicemonth-2016"
    assert settings.http_port == 8000


# --- database URLs -----------------------------------------------------------------------


def test_service_prefixed_database_url_wins_over_the_plain_one(tmp_path: Path) -> None:
    settings = settings_in(
        tmp_path,
        DATABASE_URL="postgresql://sm:pw@db.example/servicemonth",
        PAIRING_DATABASE_URL=f"sqlite:///{tmp_path / 'own-pairing.db'}",
    )

    assert settings.database_url("pairing") == f"sqlite:///{tmp_path / 'own-pairing.db'}"
    assert settings.database_url("notify").endswith("/servicemonth_notify")


def test_plain_postgresql_url_becomes_one_database_per_service(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, DATABASE_URL="postgresql://sm:pw@db.example:5432/campaign")

    urls = {service: settings.database_url(service) for service in SERVICES}

    assert urls == {
        service: f"postgresql+psycopg://sm:pw@db.example:5432/campaign_{service}"
        for service in SERVICES
    }


def test_service_prefixed_postgresql_url_also_gets_the_psycopg_driver(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, REPORTING_DATABASE_URL="postgresql://sm@db.example/reports")

    assert settings.database_url("reporting") == "postgresql+psycopg://sm@db.example/reports"


def test_empty_service_prefixed_database_url_falls_back_to_the_plain_one(tmp_path: Path) -> None:
    settings = settings_in(
        tmp_path, DATABASE_URL="postgresql://sm@db.example/base", PAIRING_DATABASE_URL=""
    )

    assert settings.database_url("pairing") == "postgresql+psycopg://sm@db.example/base_pairing"


def test_asking_for_an_unknown_service_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown service 'billing'"):
        settings_in(tmp_path).database_url("billing")


# --- bad keys are named ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DISTRICT", "110105"),
        ("DISTRICT", "41030"),
        ("CAMPAIGN_START", "2016-06-31"),
        ("CAMPAIGN_END", "end of July"),
        ("HTTP_PORT", "http"),
        ("HTTP_PORT", "0"),
        ("HTTP_PORT", "65536"),
        ("BROKER_URL", "redis://localhost:6379/0"),
        ("DATABASE_URL", "mysql://sm@db.example/servicemonth"),
        ("DATABASE_URL", "not a url"),
        ("NOTIFY_DATABASE_URL", "oracle://sm@db.example/notify"),
        ("DEPLOYMENT", "luoyang west"),
    ],
)
def test_a_bad_key_raises_a_config_error_naming_that_key(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=f"SERVICEMONTH_{key}"):
        settings_in(tmp_path, **{key: value})


def test_campaign_ending_before_it_starts_is_refused_naming_the_end(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SERVICEMONTH_CAMPAIGN_END: 2016-06-01 is before"):
        settings_in(tmp_path, CAMPAIGN_START="2016-06-26", CAMPAIGN_END="2016-06-01")


def test_unsupported_broker_scheme_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'redis' is not a supported broker"):
        settings_in(tmp_path, BROKER_URL="redis://localhost:6379/0")


def test_a_superscript_digit_port_raises_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SERVICEMONTH_HTTP_PORT"):
        settings_in(tmp_path, HTTP_PORT="²")


# --- the personal-data key ---------------------------------------------------------------


def test_pii_key_comes_from_the_environment_when_set(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, PII_KEY="ab" * 32)

    assert settings.pii_key() == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "keys").exists()


@pytest.mark.parametrize("value", ["ab" * 31, "zz" * 32, "ab" * 33])
def test_pii_key_that_is_not_64_hex_digits_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="SERVICEMONTH_PII_KEY"):
        settings_in(tmp_path, PII_KEY=value).pii_key()


def test_pii_key_is_generated_once_under_home_readable_only_by_its_owner(
    tmp_path: Path,
) -> None:
    key = settings_in(tmp_path).pii_key()

    path = tmp_path / "keys" / "pii.key"
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bytes.fromhex(path.read_text().strip()) == key
    assert [p.name for p in path.parent.iterdir()] == ["pii.key"]


def test_generated_pii_key_is_stable_across_calls_and_processes_sharing_home(
    tmp_path: Path,
) -> None:
    first = settings_in(tmp_path).pii_key()

    assert settings_in(tmp_path).pii_key() == first
    assert settings_in(tmp_path).pii_key() == first


def test_each_home_gets_its_own_generated_pii_key(tmp_path: Path) -> None:
    assert settings_in(tmp_path / "a").pii_key() != settings_in(tmp_path / "b").pii_key()


def test_a_production_broker_requires_the_personal_data_key(tmp_path: Path) -> None:
    env = {
        "SERVICEMONTH_HOME": str(tmp_path),
        "SERVICEMONTH_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/x",
    }
    with pytest.raises(ConfigError, match="SERVICEMONTH_PII_KEY"):
        load(env)
    assert len(load({**env, "SERVICEMONTH_PII_KEY": "cd" * 32}).pii_key()) == 32
