"""GongHook: an Airflow connection (``conn_type`` ``gong``) turned into a :class:`GongClient`."""

from __future__ import annotations

import base64
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_sophia.exceptions import GongError
from airflow_provider_sophia.gong.client import DEFAULT_BASE_URL, GongClient
from airflow_provider_sophia.hooks.gong_form import EXTRAS, UI_FIELD_BEHAVIOUR
from airflow_provider_sophia.settings import setting


class GongHook(BaseHook):
    """Interact with the Gong REST API through a bounded, rate-limited, breaker-guarded client.

    Connection: host = base URL (``https://api.gong.io`` when empty), login = access key,
    password = access key secret; extras (see :data:`EXTRAS`) tune retries, the limiter and
    the breaker. Precedence: an argument here, then the extra, then ``[sophia]`` settings.

    :param gong_conn_id: the Airflow connection id.
    :param client_kwargs: :class:`GongClient` keyword arguments that override the connection's
        extras (e.g. ``max_attempts=3``, ``breaker=...``).
    """

    conn_name_attr = "gong_conn_id"
    default_conn_name = "gong_default"
    conn_type = "gong"
    hook_name = "Gong"

    def __init__(self, gong_conn_id: str = default_conn_name, **client_kwargs: Any) -> None:
        super().__init__()
        self.gong_conn_id = gong_conn_id
        self.client_kwargs = client_kwargs
        self._client: GongClient | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the connection form's hidden fields, relabelling and placeholders."""
        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the connection form's extra fields (needs the webserver's wtforms and FAB)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField

        return {
            name: (IntegerField if kind is int else StringField)(
                lazy_gettext(label), description=description, widget=BS3TextFieldWidget()
            )
            for name, (_, kind, label, description) in EXTRAS.items()
        }

    @staticmethod
    def base_url(host: str | None, schema: str | None = None, port: int | None = None) -> str:
        """Return the API base URL of a connection's host (a full URL, or a bare host name).

        :param host: the connection's host.
        :param schema: scheme for a bare host name (``https`` when empty).
        :param port: port for a bare host name.
        """
        if not host:
            return DEFAULT_BASE_URL
        if "://" in host:
            return host.rstrip("/")
        return f"{schema or 'https'}://{host}" + (f":{port}" if port else "")

    def client_config(self) -> dict[str, Any]:
        """Return the :class:`GongClient` arguments: hook arguments > extras > ``[sophia]`` settings.

        :raises ValueError: when an extra does not parse as its type.
        """
        conn = self.get_connection(self.gong_conn_id)
        extras = conn.extra_dejson
        config: dict[str, Any] = {
            "base_url": self.base_url(conn.host, conn.schema, conn.port),
            "access_key": conn.login or "",
            "access_key_secret": conn.password or "",
        }
        for name, (option, kind, _, _) in EXTRAS.items():
            value = self.client_kwargs.get(name, extras.get(name))
            if value not in (None, ""):
                try:
                    value = kind(value)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Extra {name!r} = {value!r} of connection {self.gong_conn_id!r} is not a "
                        f"valid {kind.__name__}; fix the connection's extras."
                    ) from None
            else:
                value = None
            if option is not None:
                value = setting(option, value)
            if value is not None:
                config[name] = value
        config.update({key: value for key, value in self.client_kwargs.items() if key not in EXTRAS})
        return config

    def get_client(self) -> GongClient:
        """Return the hook's client (built once), with its secrets registered with the log masker."""
        if self._client is None:
            config = self.client_config()
            secret = config["access_key_secret"]
            if secret:
                mask_secret(secret)
                basic = base64.b64encode(f"{config['access_key']}:{secret}".encode()).decode()
                mask_secret(basic)
                mask_secret(f"Basic {basic}")
            self._client = GongClient(**config)
            self.log.info("Gong client for %s (connection %r) ready.", config["base_url"], self.gong_conn_id)
        return self._client

    def get_conn(self) -> GongClient:
        """Return the hook's :class:`GongClient` (same as :meth:`get_client`)."""
        return self.get_client()

    def test_connection(self) -> tuple[bool, str]:
        """Fetch the first page of ``GET /v2/users``; return whether it worked and a message."""
        try:
            client = self.get_client()
            page = next(client.iter_pages("users"))
        except (GongError, ValueError) as error:
            return False, f"{type(error).__name__}: {error}"
        return True, f"Connected to Gong at {client.base_url}: {page.total_records or 0} users visible."
