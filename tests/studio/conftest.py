"""Fixtures of the studio's tests: a studio on the test's own output folder, and a signed-in client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from studio.app import Studio, build_app
from studio.server import StudioOptions, build_studio

TOKEN = "test-token-" + "0123456789abcdef" * 2
BASE = "http://127.0.0.1:8765"
SAME_ORIGIN = {"origin": BASE}


@dataclass
class Signed:
    """A client signed in to a studio (``client``), the studio's parts (``studio``)."""

    client: TestClient
    studio: Studio

    def csrf(self, page: str = "/launch") -> str:
        """The CSRF token a page carries."""
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(page).text)
        assert found, f"{page} carries no CSRF token"
        return found.group(1)

    def post(self, url: str, data: dict | None = None, **kwargs) -> object:
        """A same-origin POST with the session's CSRF token."""
        return self.client.post(url, data={"csrf": self.csrf(), **(data or {})}, headers=SAME_ORIGIN,
                                follow_redirects=False, **kwargs)


@pytest.fixture
def make_studio() -> Iterator:
    """``make_studio(**options) -> Signed``: a studio (scheduler running) on the test's folders, signed in."""
    clients = []

    def make(**options) -> Signed:
        studio = build_studio(StudioOptions(**options), TOKEN)
        client = TestClient(build_app(studio), base_url=BASE)
        client.__enter__()
        clients.append(client)
        response = client.get(f"/runs?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303, response.text
        return Signed(client, studio)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def signed(make_studio) -> Signed:
    """A signed-in client of a studio with the default options."""
    return make_studio()
