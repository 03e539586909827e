"""The studio's protections, each with a test that fails when it is removed: the token and its cookie,
slowed guesses, CSRF and Origin on every state-changing route, the Host check (DNS rebinding), page
headers, no token in the log, and --no-token refused beyond this machine."""

from __future__ import annotations

import hmac
import logging

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from common.errors import UserError
from studio import security
from studio.app import build_app
from studio.security import FREE_GUESSES, Guard, Throttle, host_name_of
from studio.server import StudioOptions, build_studio, check_options
from tests.studio.conftest import BASE, SAME_ORIGIN, TOKEN


def fresh_client(**options) -> TestClient:
    return TestClient(build_app(build_studio(StudioOptions(**options), TOKEN)), base_url=BASE)


def test_nothing_but_the_sign_in_page_and_static_files_without_the_token():
    with fresh_client() as client:
        assert client.get("/runs", headers={"accept": "text/html"}, follow_redirects=False).headers["location"] == "/login"
        for path in ("/runs", "/queue", "/launch", "/review", "/predict", "/compare?run=a&run=b",
                     "/files/output/x.png", "/runs/x/events"):
            assert client.get(path, follow_redirects=False).status_code == 401, path
        assert client.get("/login").status_code == 200
        assert client.get("/static/studio.js").status_code == 200


def test_the_token_becomes_an_httponly_samesite_strict_cookie_and_leaves_the_url():
    with fresh_client() as client:
        response = client.get(f"/queue?token={TOKEN}&x=1", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/queue?x=1"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert TOKEN not in cookie
        assert client.get("/queue").status_code == 200


def test_a_forged_or_foreign_cookie_is_refused():
    with fresh_client() as client:
        client.cookies.set(security.COOKIE, "abc.def")
        assert client.get("/queue", follow_redirects=False).status_code == 401
    other = Guard("another-token-" + "x" * 20, frozenset({"127.0.0.1"}))
    with fresh_client() as client:
        client.cookies.set(security.COOKIE, other.new_session())  # signed with another token
        assert client.get("/queue", follow_redirects=False).status_code == 401


def test_the_token_is_compared_in_constant_time(monkeypatch):
    calls = []
    original = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    with fresh_client() as client:
        client.get("/queue?token=wrong-guess", follow_redirects=False)
    assert any(b"wrong-guess" in pair for pair in calls)


def test_repeated_wrong_tokens_are_slowed_down():
    with fresh_client() as client:
        codes = [client.get("/queue?token=guess%d" % i, follow_redirects=False).status_code
                 for i in range(FREE_GUESSES + 1)]
        assert codes[:FREE_GUESSES] == [403] * FREE_GUESSES
        assert codes[FREE_GUESSES] == 429
        refused = client.get(f"/queue?token={TOKEN}", follow_redirects=False)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1  # even the right one waits
        assert client.post("/login", data={"token": TOKEN}, headers=SAME_ORIGIN).status_code == 429


def test_the_wait_grows_and_ends():
    throttle = Throttle()
    for moment in range(FREE_GUESSES):
        assert throttle.wait("a", now=float(moment)) == 0
        throttle.failed("a", now=float(moment))
    first = throttle.wait("a", now=float(FREE_GUESSES))
    throttle.failed("a", now=float(FREE_GUESSES) + first)
    assert throttle.wait("a", now=float(FREE_GUESSES) + first) > first
    assert throttle.wait("b", now=5.0) == 0  # another client is not slowed
    assert throttle.wait("a", now=10_000.0) == 0


def post_routes():
    app = build_app(build_studio(StudioOptions(), TOKEN))
    return [route for route in app.routes if isinstance(route, Route) and "POST" in (route.methods or ())
            and route.path != "/login"]


def test_every_post_route_goes_through_the_csrf_check():
    routes = post_routes()
    assert len(routes) >= 5
    unchecked = [route.path for route in routes if not getattr(route.endpoint, "state_changing", False)]
    assert unchecked == []


@pytest.mark.parametrize("route", [r.path for r in post_routes()])
def test_every_post_route_refuses_a_missing_or_wrong_csrf_token_and_a_foreign_origin(signed, route):
    url = route.replace("{name}", "x").replace("{job}", "1")
    client = signed.client
    assert client.post(url, data={}, headers=SAME_ORIGIN).status_code == 403
    assert client.post(url, data={"csrf": "0" * 64}, headers=SAME_ORIGIN).status_code == 403
    good = signed.csrf()
    assert client.post(url, data={"csrf": good}, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post(url, data={"csrf": good}).status_code == 403  # no Origin, no Referer
    assert client.post(url, data={"csrf": good}, headers={"origin": "null"}).status_code == 403


def test_the_csrf_token_may_come_in_a_header(signed):
    response = signed.client.post("/jobs/99/cancel", headers={**SAME_ORIGIN, "x-csrf-token": signed.csrf()})
    assert response.status_code == 400 and "no job 99" in response.text  # past the check, to the route


@pytest.mark.parametrize("host, allowed", [("127.0.0.1:8765", True), ("localhost:8765", True), ("[::1]:8765", True),
                                           ("10.1.2.3:8765", True), ("evil.example:8765", False),
                                           ("evil.example", False), ("", False)])
def test_the_host_header_must_name_the_studio(host, allowed):
    with fresh_client() as client:
        response = client.get("/login", headers={"host": host})
        assert (response.status_code == 200) is allowed, (host, response.status_code)
        if not allowed:
            assert response.status_code == 400 and "DNS rebinding" in response.text


def test_an_allowed_host_name_is_accepted():
    with fresh_client(allowed_hosts=["studio.example.org"]) as client:
        assert client.get("/login", headers={"host": "studio.example.org"}).status_code == 200
        assert client.get("/login", headers={"host": "other.example.org"}).status_code == 400


def test_host_names_are_parsed():
    assert host_name_of("Example.ORG:80") == "example.org"
    assert host_name_of("[::1]:8765") == "::1"
    assert host_name_of("::1") == "::1"


def test_pages_forbid_inline_scripts_framing_and_sniffing(signed):
    response = signed.client.get("/runs")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text  # no inline script a policy would have to allow


def test_no_token_in_the_log(caplog):
    with caplog.at_level(logging.INFO, logger="studio"):
        with fresh_client() as client:
            client.get(f"/runs?token={TOKEN}&q=a")
            client.get("/runs?token=wrong&q=b")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/runs?q=a" in logged and "/runs?q=b" in logged
    assert TOKEN not in logged and "wrong" not in logged


def test_no_token_beyond_this_machine_is_refused():
    with pytest.raises(UserError, match="will not start without a token"):
        check_options(StudioOptions(host="0.0.0.0", no_token=True))
    assert check_options(StudioOptions(host="127.0.0.1", no_token=True)) is None
    assert len(check_options(StudioOptions(host="0.0.0.0"))) >= 32


def test_a_short_token_from_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("IMAGEPIPE_STUDIO_TOKEN", "short")
    with pytest.raises(UserError, match="shorter than 16"):
        check_options(StudioOptions())


def test_without_a_token_on_loopback_every_browser_is_signed_in():
    with TestClient(build_app(build_studio(StudioOptions(no_token=True), None)), base_url=BASE) as client:
        assert client.get("/queue").status_code == 200
        assert client.get("/queue?token=anything").status_code == 200  # no token to guess


def test_signing_in_with_the_form_needs_the_right_token_and_the_studio_s_own_origin():
    with fresh_client() as client:
        assert client.post("/login", data={"token": TOKEN}, headers={"origin": "http://evil.example"}).status_code == 403
        assert client.post("/login", data={"token": "wrong"}, headers=SAME_ORIGIN).status_code == 403
        signed_in = client.post("/login", data={"token": TOKEN}, headers=SAME_ORIGIN, follow_redirects=False)
        assert signed_in.status_code == 303 and "HttpOnly" in signed_in.headers["set-cookie"]
        assert client.get("/queue").status_code == 200


def test_before_signing_in_a_request_body_is_small():
    with fresh_client() as client:
        response = client.post("/login", data={"token": TOKEN, "pad": "x" * 20_000}, headers=SAME_ORIGIN)
        assert response.status_code == 413 and "before signing in" in response.text
        with_file = client.post("/login", data={"token": TOKEN}, files={"f": ("a.bin", b"0" * 100)},
                                headers=SAME_ORIGIN)
        assert with_file.status_code == 400  # no file is taken by the sign-in form


def test_an_encoded_token_name_is_kept_out_of_the_log(caplog):
    with caplog.at_level(logging.INFO, logger="studio"):
        with fresh_client() as client:
            client.get(f"/runs?%74oken={TOKEN}&q=c")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "q=c" in logged and TOKEN not in logged


def test_the_processes_the_studio_starts_do_not_get_its_token(monkeypatch):
    monkeypatch.setenv("IMAGEPIPE_STUDIO_TOKEN", TOKEN)
    monkeypatch.setenv("OTHER", "kept")
    environment = security.child_environment()
    assert "IMAGEPIPE_STUDIO_TOKEN" not in environment and environment["OTHER"] == "kept"


def test_a_huge_job_number_is_a_clear_error(signed):
    response = signed.post("/jobs/99999999999999999999/cancel")
    assert response.status_code == 400 and "no job" in response.text
