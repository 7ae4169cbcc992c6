"""The published OpenAPI document describes the error bodies the service really sends."""

from __future__ import annotations

import json

from api.main import create_app
from jobs.settings import Settings
from tests.service.conftest import RecordingDispatcher


def test_openapi_documents_the_services_own_422_body_on_every_route(tmp_path):
    schema = create_app(Settings(data_dir=tmp_path), dispatcher=RecordingDispatcher()).openapi()
    wrong = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "HTTPValidationError" in json.dumps(operation.get("responses", {}).get("422", {}))
    ]
    assert wrong == []


def test_docs_and_redoc_load_their_assets_from_the_service_itself(tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(Settings(data_dir=tmp_path), dispatcher=RecordingDispatcher())
    with TestClient(app) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html, page
            assets = [part.split('"')[0] for part in html.split('src="')[1:]] + [
                part.split('"')[0] for part in html.split('href="')[1:]
            ]
            local = [a for a in assets if a.startswith("/") and a.endswith((".js", ".css"))]
            assert local, page
            for asset in local:
                assert client.get(asset).status_code == 200, asset
