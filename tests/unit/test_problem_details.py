"""The API's error table answers internal errors without their internals (no I/O: a bare app with its handlers)."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import TestClient
from spane_api.problems import exception_handlers
from spane_core.errors import InternalError, StorageError


@get("/internal")
async def internal() -> None:
    raise InternalError("deciding on execution 'e1' failed: KeyError('secret-internal-detail')")


@get("/storage")
async def storage() -> None:
    raise StorageError("redis at 10.1.2.3:6379 is unavailable: secret-internal-detail")


@get("/bug")
async def bug() -> None:
    raise RuntimeError("secret-internal-detail")


def test_a_5xx_problem_keeps_its_internals_for_the_log() -> None:
    app = Litestar([internal, storage, bug], exception_handlers=exception_handlers(), logging_config=None)
    with TestClient(app) as client:
        for path, status in (("/internal", 500), ("/storage", 503), ("/bug", 500)):
            response = client.get(path)
            assert response.status_code == status
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["detail"] and "secret-internal-detail" not in response.text, response.text
            assert "Traceback" not in response.text
