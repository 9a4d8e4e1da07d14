"""Which personal-data keys a process has: SERVICEMONTH_PII_KEY alone (version 1, as
always), later versions from SERVICEMONTH_PII_KEYS_FILE, and the look-up key once
version 1 is retired. A file that cannot be used stops with one line naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import ConfigError, Settings, load

FIRST, SECOND, THIRD = "11" * 32, "22" * 32, "33" * 32


def settings_in(home: Path, **keys: str) -> Settings:
    return load(
        {"SERVICEMONTH_HOME": str(home), **{f"SERVICEMONTH_{k}": v for k, v in keys.items()}}
    )


def keys_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pii.keys"
    path.write_text(text)
    return str(path)


def test_the_key_alone_is_version_one_and_keys_the_look_ups() -> None:
    keys = load({"SERVICEMONTH_PII_KEY": FIRST}).pii_keys()

    assert dict(keys.keys) == {1: bytes.fromhex(FIRST)}
    assert keys.current == 1 and keys.lookup is None


def test_a_keys_file_adds_versions_and_the_newest_is_current(tmp_path: Path) -> None:
    listed = keys_file(tmp_path, f"# rotated in June\n3 {THIRD}\n\n2 {SECOND}  # the old one\n")

    keys = settings_in(tmp_path, PII_KEY=FIRST, PII_KEYS_FILE=listed).pii_keys()

    assert sorted(keys.keys) == [1, 2, 3] and keys.current == 3
    assert keys.keys[1] == bytes.fromhex(FIRST)


def test_a_production_broker_accepts_a_keys_file_instead_of_the_key(tmp_path: Path) -> None:
    listed = keys_file(tmp_path, f"2 {SECOND}\n")
    env = {"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/x", "PII_LOOKUP_KEY": FIRST}

    keys = settings_in(tmp_path, PII_KEYS_FILE=listed, **env).pii_keys()

    assert sorted(keys.keys) == [2] and keys.lookup == bytes.fromhex(FIRST)


def test_a_key_marked_next_opens_but_does_not_seal_yet(tmp_path: Path) -> None:
    listed = keys_file(tmp_path, f"2 {SECOND}\n3 {THIRD} next\n")

    keys = settings_in(tmp_path, PII_KEY=FIRST, PII_KEYS_FILE=listed).pii_keys()

    assert sorted(keys.keys) == [1, 2, 3] and keys.current == 2


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("2\n", "line 1 is not"),
        (f"two {SECOND}\n", "line 1 is not"),
        (f"2 {SECOND[:-2]}\n", "line 1: the key is not 64 hex digits"),
        (f"2 {SECOND}\n2 {THIRD}\n", "version 2 is listed twice"),
        (f"1 {SECOND}\n", "version 1 differs from SERVICEMONTH_PII_KEY"),
        ("# nothing yet\n", "lists no key"),
        (f"2 {SECOND} later\n", "line 1 is not"),
    ],
)
def test_a_keys_file_that_cannot_be_used_is_refused_naming_the_key(
    tmp_path: Path, text: str, said: str
) -> None:
    config = settings_in(tmp_path, PII_KEY=FIRST, PII_KEYS_FILE=keys_file(tmp_path, text))

    with pytest.raises(ConfigError, match=f"SERVICEMONTH_PII_KEYS_FILE: .*{said}") as refused:
        config.pii_keys()
    assert SECOND[:16] not in str(refused.value)  # a key is never repeated in the message


def test_a_file_whose_every_key_is_next_leaves_nothing_to_seal_with(tmp_path: Path) -> None:
    listed = keys_file(tmp_path, f"2 {SECOND} next\n")
    config = settings_in(tmp_path, PII_KEYS_FILE=listed, PII_LOOKUP_KEY=FIRST)

    with pytest.raises(ConfigError, match="SERVICEMONTH_PII_KEYS_FILE: every key is `next`"):
        config.pii_keys()


def test_retiring_version_one_needs_the_look_up_key(tmp_path: Path) -> None:
    config = settings_in(tmp_path, PII_KEYS_FILE=keys_file(tmp_path, f"2 {SECOND}\n"))

    with pytest.raises(ConfigError, match="SERVICEMONTH_PII_LOOKUP_KEY: required"):
        config.pii_keys()


def test_a_missing_keys_file_is_named(tmp_path: Path) -> None:
    config = settings_in(tmp_path, PII_KEY=FIRST, PII_KEYS_FILE=str(tmp_path / "absent"))

    with pytest.raises(ConfigError, match="SERVICEMONTH_PII_KEYS_FILE: cannot read"):
        config.pii_keys()
