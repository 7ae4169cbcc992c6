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
