"""The Airflow UI of the e2e cluster in headless Chromium: the DAG list and the Gong connection form.

Uses Debian's ``chromium`` through the ``playwright`` package (no browser download). The
screenshots the README shows are saved to ``docs/img/`` once a page has passed its checks.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from airflow_provider_sophia.hooks.gong import GongHook
from tests.conftest import unavailable
from tests.e2e.conftest import EXAMPLE_DAGS, REPO, AirflowCluster

pytestmark = pytest.mark.e2e

SCREENSHOTS = REPO / "docs" / "img"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
UI_TIMEOUT_MS = 30_000


def _chromium() -> str:
    """Return Debian's Chromium binary, skipping (or failing when required) if it is missing."""
    path = shutil.which("chromium")
    if path is None:
        unavailable("Chromium", FileNotFoundError("`chromium` is not on PATH; run scripts/system-deps.sh"))
    return str(path)


def _browser_processes(profile: str) -> list[psutil.Process]:
    """Return the live processes whose command line names the browser profile ``profile``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            named = any(profile in arg for arg in process.info["cmdline"] or ())
            if named and process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="module")
def ui_page(airflow_cluster: AirflowCluster) -> Iterator[Any]:
    """A headless Chromium page (fresh profile) on loopback; no browser process is left afterwards."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as error:
        unavailable("the playwright package", error)
    executable = _chromium()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with tempfile.TemporaryDirectory(prefix="sophia-chromium-") as profile:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport=VIEWPORT,
            )
            try:
                browser_page = context.new_page()
                browser_page.set_default_timeout(UI_TIMEOUT_MS)
                yield browser_page
            finally:
                context.close()
        left = _browser_processes(profile)
        assert not left, f"Chromium processes left behind: {[p.pid for p in left]}"


def test_dag_list_shows_the_example_dags(airflow_cluster: AirflowCluster, ui_page: Any) -> None:
    from playwright.sync_api import expect

    ui_page.goto(f"{airflow_cluster.url}/dags")
    for dag_id in sorted(EXAMPLE_DAGS):
        expect(ui_page.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
    ui_page.screenshot(path=SCREENSHOTS / "ui-dags.png")


def test_gong_connection_form_shows_the_relabelled_fields(
    airflow_cluster: AirflowCluster, ui_page: Any
) -> None:
    from playwright.sync_api import expect

    behaviour = GongHook.get_ui_field_behaviour()
    ui_page.goto(f"{airflow_cluster.url}/connections")
    ui_page.get_by_role("button", name="Add Connection").click()
    dialog = ui_page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill(GongHook.default_conn_name)
    dialog.get_by_role("combobox", name="Connection Type").fill(GongHook.conn_type)
    option = re.compile(rf"^({GongHook.hook_name}|{GongHook.conn_type})$", re.IGNORECASE)
    ui_page.get_by_role("option", name=option).click()
    expect(dialog.get_by_text("Standard Fields")).to_be_visible()

    labels = {_label_text(text) for text in dialog.locator("label").all_inner_texts()}
    relabelled = set(behaviour["relabeling"].values())
    replaced = {field.capitalize() for field in behaviour["relabeling"]}
    hidden = {field.capitalize() for field in behaviour["hidden_fields"]}
    assert relabelled <= labels, (
        f"the Gong form shows {sorted(labels)}, not the relabelled {sorted(relabelled)}; Airflow 3.3's UI "
        "reads them from the 'ui-field-behaviour' of the provider info's 'connection-types' entry"
    )
    assert not labels & (replaced | hidden), (
        f"the Gong form still shows {sorted(labels & (replaced | hidden))}"
    )
    for name, placeholder in behaviour["placeholders"].items():
        if name in behaviour["relabeling"]:
            expect(dialog.get_by_placeholder(placeholder, exact=True)).to_be_visible()
    ui_page.screenshot(path=SCREENSHOTS / "ui-gong-connection.png")


def _label_text(text: str) -> str:
    """Return a form label's text without the required-field marker."""
    return text.replace("*", "").strip()
