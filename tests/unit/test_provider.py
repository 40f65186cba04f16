from __future__ import annotations

import importlib
import importlib.metadata

import pytest

from airflow_provider_sophia import __version__
from airflow_provider_sophia.get_provider_info import get_provider_info
from airflow_provider_sophia.settings import DEFAULTS, setting


def test_entry_point_is_registered() -> None:
    points = importlib.metadata.entry_points(group="apache_airflow_provider")
    ours = [point for point in points if point.value.startswith("airflow_provider_sophia.")]
    assert len(ours) == 1
    assert ours[0].load() is get_provider_info


def test_providers_manager_sees_the_provider_and_gong_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    provider = ProvidersManager().providers["airflow-provider-sophia"]
    assert provider.version == __version__
    hook = ProvidersManagerTaskRuntime().hooks["gong"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_sophia.hooks.gong.GongHook"


@pytest.mark.parametrize("kind", ["hooks", "operators"])
def test_every_declared_module_imports(kind: str) -> None:
    for entry in get_provider_info()[kind]:
        for module in entry["python-modules"]:
            importlib.import_module(module)


def test_connection_type_matches_hook_class() -> None:
    for entry in get_provider_info()["connection-types"]:
        module, _, name = entry["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == entry["connection-type"]


def test_config_section_declares_every_default() -> None:
    options = get_provider_info()["config"]["sophia"]["options"]
    assert set(options) == set(DEFAULTS)
    for key, option in options.items():
        assert option["default"] == str(DEFAULTS[key][0])
        assert option["description"]


def test_setting_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert setting("pool_max_size") == DEFAULTS["pool_max_size"][0]
    monkeypatch.setenv("AIRFLOW__SOPHIA__POOL_MAX_SIZE", "13")
    assert setting("pool_max_size") == 13
    assert setting("pool_max_size", 4) == 4  # an explicit argument wins
    monkeypatch.setenv("AIRFLOW__SOPHIA__GONG_BASE_DELAY", "0.25")
    assert setting("gong_base_delay") == 0.25


def test_bad_configured_value_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SOPHIA__POOL_MAX_SIZE", "many")
    expected = r"\[sophia\] pool_max_size = 'many'.*AIRFLOW__SOPHIA__POOL_MAX_SIZE"
    with pytest.raises(ValueError, match=expected):
        setting("pool_max_size")
