"""GongHook: connection parsing, precedence of settings, UI metadata, test_connection, masking."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_sophia.gong.client import DEFAULT_BASE_URL, GongClient
from airflow_provider_sophia.gong.simulator import GongSimulator, Settings
from airflow_provider_sophia.hooks.gong import GongHook
from airflow_provider_sophia.hooks.gong_form import CONN_FIELDS, EXTRAS, UI_FIELD_BEHAVIOUR


@pytest.fixture
def sim() -> Iterator[GongSimulator]:
    with GongSimulator(seed=11, settings=Settings(rate_limit=None)) as simulator:
        yield simulator


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "gong", **fields}))


@pytest.fixture
def gong_conn(sim: GongSimulator, monkeypatch: pytest.MonkeyPatch) -> str:
    extra = {"base_delay": "0.01", "max_attempts": "2", "rate_limit_per_second": 50}
    set_connection(
        monkeypatch,
        "gong_default",
        host=sim.url,
        login=sim.access_key,
        password=sim.access_key_secret,
        extra=extra,
    )
    return "gong_default"


def test_hook_declares_the_connection_type() -> None:
    assert GongHook.conn_name_attr == "gong_conn_id"
    assert GongHook.default_conn_name == "gong_default"
    assert GongHook.conn_type == "gong"
    assert GongHook.hook_name == "Gong"


def test_ui_field_behaviour_relabels_fields() -> None:
    behaviour = GongHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {
        "host": "Base URL",
        "login": "Access Key",
        "password": "Access Key Secret",
    }
    assert behaviour["placeholders"]["host"] == DEFAULT_BASE_URL
    assert set(behaviour["hidden_fields"]) == {"schema", "port"}
    assert UI_FIELD_BEHAVIOUR["relabeling"] == behaviour["relabeling"]
    assert set(CONN_FIELDS) == set(EXTRAS)
    assert all(field["label"] and field["schema"]["type"] for field in CONN_FIELDS.values())


def test_connection_form_widgets_when_the_webserver_packages_exist() -> None:
    pytest.importorskip("wtforms")
    pytest.importorskip("flask_appbuilder")
    assert set(GongHook.get_connection_form_widgets()) == set(EXTRAS)


def test_client_uses_the_connection(gong_conn: str, sim: GongSimulator) -> None:
    client = GongHook(gong_conn).get_client()
    assert isinstance(client, GongClient)
    assert client.base_url == sim.url
    assert client.policy.max_attempts == 2
    assert client.rate_limiter is not None
    assert client.rate_limiter.rate == 50.0
    hook = GongHook(gong_conn)
    assert hook.get_conn() is hook.get_client()  # built once per hook
    assert len(list(client.iter_users())) == 25


def test_precedence_argument_then_extra_then_setting(gong_conn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SOPHIA__GONG_MAX_DELAY", "7.5")
    monkeypatch.setenv("AIRFLOW__SOPHIA__GONG_MAX_ATTEMPTS", "9")
    config = GongHook(gong_conn, base_delay=0.5, breaker_fail_max=2).client_config()
    assert config["base_delay"] == 0.5  # argument beats the extra 0.01
    assert config["max_attempts"] == 2  # extra beats [sophia] gong_max_attempts = 9
    assert config["max_delay"] == 7.5  # [sophia] beats the built-in 60
    assert config["timeout"] == 60.0  # built-in default
    assert config["breaker_fail_max"] == 2
    assert "breaker_redis_url" not in config


def test_bad_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "gong_bad", login="k", password="secret-1", extra={"max_attempts": "lots"})
    with pytest.raises(ValueError, match=r"Extra 'max_attempts' = 'lots' of connection 'gong_bad'"):
        GongHook("gong_bad").client_config()


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, DEFAULT_BASE_URL),
        ("https://acme.api.gong.io/", None, None, "https://acme.api.gong.io"),
        ("127.0.0.1", "http", 8089, "http://127.0.0.1:8089"),
        ("acme.api.gong.io", None, None, "https://acme.api.gong.io"),
    ],
)
def test_base_url(host: str | None, schema: str | None, port: int | None, expected: str) -> None:
    assert GongHook.base_url(host, schema, port) == expected


def test_test_connection_succeeds(gong_conn: str, sim: GongSimulator) -> None:
    ok, message = GongHook(gong_conn).test_connection()
    assert ok, message
    assert "25 users" in message
    assert [entry["path"] for entry in sim.requests()] == ["/v2/users"]


def test_test_connection_reports_bad_credentials(sim: GongSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "gong_wrong", host=sim.url, login=sim.access_key, password="wrong-secret-1")
    ok, message = GongHook("gong_wrong").test_connection()
    assert not ok
    assert "GongAuthError" in message
    assert "check the access key" in message
    assert "wrong-secret-1" not in message
    assert len(sim.requests()) == 1


def test_secret_and_basic_header_are_masked(gong_conn: str, sim: GongSimulator) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    GongHook(gong_conn).get_client()
    basic = base64.b64encode(f"{sim.access_key}:{sim.access_key_secret}".encode()).decode()
    for secret in (sim.access_key_secret, basic, f"Authorization: Basic {basic}"):
        assert sim.access_key_secret not in str(redact(secret))
        assert basic not in str(redact(secret))
