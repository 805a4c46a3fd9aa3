"""Authentication, tokens, login throttling, IP allow-list, CORS, headers and options."""

from __future__ import annotations

import ast
import base64
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from evertask import add_evertask
from evertask_abstractions import ConfigurationError, NoRetryPolicy
from evertask_monitor_api import (
    LoginThrottle,
    MonitoringOptions,
    TokenService,
    monitoring_of,
)
from evertask_monitor_api.auth import Credentials, resolve_credentials

from . import tasks
from .conftest import Monitored
from .harness import API, BASE, PASSWORD, SECRET, USERNAME, Api, build_host, parent_app

ANONYMOUS = {("post", "/api/auth/login"), ("get", "/api/config")}


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every (method, concrete path) of the API, path parameters filled in."""
    for path, item in schema["paths"].items():
        concrete = (
            path.replace("{task_id}", str(uuid.uuid4()))
            .replace("{batch_id}", str(uuid.uuid4()))
            .replace("{name}", "default")
        )
        for method in item:
            yield method, concrete


async def call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    url = path if path.startswith(BASE) else f"{BASE}{path}"
    if method == "post" and "json" not in kwargs:
        login = {"username": USERNAME, "password": PASSWORD}
        kwargs["json"] = login if path.endswith("login") else {}
    return await client.request(method.upper(), url, **kwargs)


async def test_every_route_except_config_and_login_needs_a_token(memory: Monitored) -> None:
    client = memory.api.client
    schema = (await client.get(f"{API}/openapi.json")).json()
    seen = 0
    for method, path in operations(schema):
        no_token = await call(client, method, path)
        if (method, path) in ANONYMOUS:
            assert no_token.status_code == 200, (method, path)
            continue
        seen += 1
        assert no_token.status_code == 401, (method, path, no_token.status_code)
        assert no_token.headers["www-authenticate"].startswith("Bearer")
        assert "message" in no_token.json()
        garbage = await call(client, method, path, headers={"Authorization": "Bearer abc.def.ghi"})
        if path.endswith("/auth/validate"):  # it reports on the token instead of refusing it
            assert garbage.json()["isValid"] is False
        else:
            assert garbage.status_code == 401, (method, path)
        basic = await call(client, method, path, headers={"Authorization": "Basic b3BzOnB3"})
        assert basic.status_code == 401, (method, path)
        ok = await call(client, method, path, headers=memory.api.headers)
        assert ok.status_code not in (401, 403), (method, path, ok.status_code)
    assert seen >= 19


async def test_clients_outside_the_allow_list_get_403_everywhere(tmp_path: Path) -> None:
    built = build_host("memory", tmp_path, lambda o: o.allow_ips("10.0.0.0/8", "2001:db8::/32"))
    await built.host.start()
    app = parent_app(built.host)
    outside = Api(app, client_ip="127.0.0.1")
    inside = Api(app, client_ip="10.1.2.3")
    try:
        schema_response = await outside.client.get(f"{API}/openapi.json")
        assert schema_response.status_code == 403
        await inside.login()
        schema = (await inside.client.get(f"{API}/openapi.json")).json()
        for method, path in operations(schema):
            denied = await call(outside.client, method, path, headers=inside.headers)
            assert denied.status_code == 403, (method, path)
            assert "127.0.0.1 is not allowed" in denied.json()["message"]
        for page in (f"{BASE}/", f"{BASE}/tasks", f"{BASE}/assets/app.js"):
            assert (await outside.client.get(page)).status_code == 403
        assert (await inside.client.get(f"{API}/config")).status_code == 200
        assert (await inside.get("/tasks")).status_code == 200
        v6 = Api(app, client_ip="2001:db8::5")
        assert (await v6.client.get(f"{API}/config")).status_code == 200
        await v6.aclose()
    finally:
        await outside.aclose()
        await inside.aclose()
        await built.close()


async def test_a_refused_address_is_logged_once_and_told_which_option(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evertask.monitor")
    built = build_host("memory", tmp_path, lambda o: o.allow_ips("10.0.0.0/8"))
    await built.host.start()
    app = parent_app(built.host)
    local = Api(app, client_ip="127.0.0.1")
    other = Api(app, client_ip="192.168.1.9")
    try:
        for _ in range(3):
            refused = await local.client.get(f"{API}/config")
            assert refused.status_code == 403
            message = refused.json()["message"]
            assert "127.0.0.1 is not allowed" in message and "allow_ips" in message
        assert (await other.client.get(f"{BASE}/")).status_code == 403
        logged = [r for r in caplog.records if "refused the client address" in r.getMessage()]
        assert [r.levelno for r in logged] == [logging.WARNING, logging.WARNING]
        assert "127.0.0.1" in logged[0].getMessage() and "allowed_ips" in logged[0].getMessage()
        assert "10.0.0.0/8" in logged[0].getMessage()
        assert "192.168.1.9" in logged[1].getMessage()
    finally:
        await local.aclose()
        await other.aclose()
        await built.close()


async def test_the_documented_allow_list_lets_localhost_in(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text()
    snippet = next(line for line in docs.splitlines() if "m.allow_ips(" in line)
    networks = snippet.split("allow_ips(", 1)[1].split(")", 1)[0]
    built = build_host(
        "memory", tmp_path, lambda o: o.allow_ips(*ast.literal_eval(f"({networks},)"))
    )
    await built.host.start()
    app = parent_app(built.host)
    try:
        for address in ("127.0.0.1", "::1", "10.1.2.3"):
            api = Api(app, client_ip=address)
            try:
                assert (await api.client.get(f"{API}/config")).status_code == 200, address
            finally:
                await api.aclose()
    finally:
        await built.close()


async def test_forwarded_for_is_trusted_only_from_configured_proxies(tmp_path: Path) -> None:
    built = build_host(
        "memory", tmp_path, lambda o: o.allow_ips("10.0.0.0/8").trust_proxies("127.0.0.1")
    )
    await built.host.start()
    app = parent_app(built.host)
    proxy = Api(app, client_ip="127.0.0.1")
    stranger = Api(app, client_ip="192.168.7.7")
    try:
        url = f"{API}/config"

        async def status(api: Api, forwarded: str | None) -> int:
            headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
            return (await api.client.get(url, headers=headers)).status_code

        assert await status(proxy, "10.1.2.3") == 200
        assert await status(proxy, "192.168.1.5, 10.1.2.3") == 200  # rightmost untrusted
        assert await status(proxy, "10.1.2.3, 192.168.1.5") == 403  # a spoofed first entry
        assert await status(proxy, "not-an-ip") == 403
        assert await status(proxy, None) == 403  # the proxy itself is not allowed
        assert await status(stranger, "10.1.2.3") == 403  # header ignored from non-proxies
    finally:
        await proxy.aclose()
        await stranger.aclose()
        await built.close()


def _forge(token: str, **changes: Any) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"


async def test_expired_tampered_and_foreign_tokens_are_refused(memory: Monitored) -> None:
    api = memory.api
    tokens = TokenService(SECRET, "evertask-monitor", "evertask-monitor", timedelta(hours=8))
    good, _ = tokens.issue(USERNAME)
    expired, _ = tokens.issue(USERNAME, now=datetime.now(UTC) - timedelta(hours=9))
    other_secret = TokenService(
        "o" * 48, "evertask-monitor", "evertask-monitor", timedelta(hours=1)
    )
    foreign, _ = other_secret.issue(USERNAME)
    wrong_audience = TokenService(SECRET, "evertask-monitor", "someone-else", timedelta(hours=1))
    audience, _ = wrong_audience.issue(USERNAME)
    unsigned = jwt.encode(
        {"sub": USERNAME, "exp": 9_999_999_999, "iat": 1, "jti": "x"}, key="", algorithm="none"
    )
    bad = {
        "expired": expired,
        "tampered subject": _forge(good, sub="root"),
        "tampered expiry": _forge(good, exp=9_999_999_999),
        "tampered signature": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "other secret": foreign,
        "other audience": audience,
        "alg none": unsigned,
        "empty": "",
    }
    for name, token in bad.items():
        response = await api.client.get(
            f"{API}/tasks", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, name
        check = await api.client.post(f"{API}/auth/validate", json={"token": token or "x"})
        assert check.status_code == 200 and check.json()["isValid"] is False, name
    response = await api.client.get(f"{API}/tasks", headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 200
    check = await api.client.post(
        f"{API}/auth/validate", headers={"Authorization": f"Bearer {good}"}
    )
    assert check.json()["isValid"] is True and check.json()["username"] == USERNAME
    assert (await api.client.post(f"{API}/auth/validate", json={})).status_code == 401


async def test_sixth_wrong_password_in_a_minute_gets_429(memory: Monitored) -> None:
    now = [1000.0]
    context = monitoring_of(memory.host).context
    context.throttle = LoginThrottle(5, 60, clock=lambda: now[0])
    client = memory.api.client
    login = f"{API}/auth/login"
    for attempt in range(5):
        response = await client.post(
            login, json={"username": USERNAME, "password": f"guess{attempt}"}
        )
        assert response.status_code == 401, attempt
        assert response.json()["message"] == "Invalid username or password."
        now[0] += 1
    sixth = await client.post(login, json={"username": USERNAME, "password": "guess5"})
    assert sixth.status_code == 429
    retry_after = int(sixth.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    # while blocked even the right password is refused, from this client and for this user
    right = await client.post(login, json={"username": USERNAME, "password": PASSWORD})
    assert right.status_code == 429
    elsewhere = Api(parent_app(memory.host), client_ip="10.9.9.9")
    try:
        blocked_user = await elsewhere.client.post(
            login, json={"username": USERNAME, "password": PASSWORD}
        )
        assert blocked_user.status_code == 429  # the per-user key
        other_user = await elsewhere.client.post(login, json={"username": "eve", "password": "x"})
        assert other_user.status_code == 401
        now[0] += retry_after
        assert (
            await client.post(login, json={"username": USERNAME, "password": PASSWORD})
        ).status_code == 200
    finally:
        await elsewhere.aclose()


async def test_no_default_password_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("EVERTASK_MONITOR_USERNAME", raising=False)
    monkeypatch.delenv("EVERTASK_MONITOR_PASSWORD", raising=False)
    caplog.set_level(logging.INFO, logger="evertask.monitor")
    built = build_host("memory", tmp_path, credentials=False)
    await built.host.start()
    api = Api(parent_app(built.host))
    try:
        creds = monitoring_of(built.host).credentials
        assert creds.generated and creds.username == "admin" and len(creds.password) >= 24
        for password in ("admin", "password", "evertask", ""):
            response = await api.client.post(
                f"{API}/auth/login", json={"username": "admin", "password": password}
            )
            assert response.status_code == 401, password
        await api.login("admin", creds.password)
        generated = [r for r in caplog.records if "generated for this process" in r.getMessage()]
        assert len(generated) == 1 and creds.password in generated[0].getMessage()
        assert generated[0].levelno == logging.WARNING
    finally:
        await api.aclose()
        await built.close()
    other = resolve_credentials(MonitoringOptions(), {})
    assert other.password != creds.password  # per process, never a constant


async def test_credentials_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVERTASK_MONITOR_USERNAME", "envuser")
    monkeypatch.setenv("EVERTASK_MONITOR_PASSWORD", "env-password-123")
    built = build_host("memory", tmp_path, credentials=False)
    await built.host.start()
    api = Api(parent_app(built.host))
    try:
        assert monitoring_of(built.host).credentials.source == "environment"
        await api.login("envuser", "env-password-123")
        assert (await api.get("/tasks/counts")).status_code == 200
    finally:
        await api.aclose()
        await built.close()
    with pytest.raises(ConfigurationError, match="without a password"):
        resolve_credentials(MonitoringOptions(username="ops"), {})


def test_credentials_compare_in_constant_time_shape() -> None:
    creds = Credentials("ops", "pässwörd")
    assert creds.check("ops", "pässwörd")
    assert not creds.check("ops", "pässwörd!")
    assert not creds.check("op", "pässwörd")
    assert not creds.check("ops", "")
    assert "pässwörd" not in repr(creds)


async def test_authentication_off_only_explicitly_and_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evertask.monitor")
    built = build_host("memory", tmp_path, lambda o: o.disable_authentication())
    await built.host.start()
    api = Api(parent_app(built.host))
    try:
        assert (await api.get("/tasks")).status_code == 200
        assert (await api.get("/config")).json()["requireAuthentication"] is False
        assert any("AUTHENTICATION IS DISABLED" in r.getMessage() for r in caplog.records)
    finally:
        await api.aclose()
        await built.close()


async def test_cors_only_for_configured_origins(memory: Monitored, tmp_path: Path) -> None:
    evil = {"Origin": "https://evil.example"}
    response = await memory.api.client.get(f"{API}/config", headers=evil)
    assert "access-control-allow-origin" not in response.headers
    built = build_host("memory", tmp_path, lambda o: o.allow_cors_origins("https://ops.example"))
    await built.host.start()
    api = Api(parent_app(built.host))
    try:
        allowed = await api.client.get(f"{API}/config", headers={"Origin": "https://ops.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
        denied = await api.client.get(f"{API}/config", headers=evil)
        assert "access-control-allow-origin" not in denied.headers
        preflight = await api.client.options(
            f"{API}/tasks",
            headers={
                "Origin": "https://ops.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert preflight.status_code == 200
    finally:
        await api.aclose()
        await built.close()


async def test_dashboard_is_served_with_a_restrictive_csp(memory: Monitored) -> None:
    client = memory.api.client
    for path in (f"{BASE}/", f"{BASE}/tasks/{uuid.uuid4()}", f"{BASE}/live"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        for directive in (
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ):
            assert directive in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert f'<base href="{BASE}/"' in page.text
    script = await client.get(f"{BASE}/assets/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    api_response = await memory.api.get("/tasks")
    assert api_response.headers["cache-control"] == "no-store"
    assert api_response.headers["content-security-policy"].startswith("default-src 'none'")
    missing = await client.get(f"{API}/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}
    assert (await client.get(f"{BASE}/assets/missing.js")).status_code == 404


async def test_api_answers_503_until_the_host_runs(tmp_path: Path) -> None:
    built = build_host("memory", tmp_path)
    api = Api(parent_app(built.host))
    try:
        await api.login()
        response = await api.get("/tasks")
        assert response.status_code == 503 and "not running" in response.json()["message"]
    finally:
        await api.aclose()


def test_options_are_validated(tmp_path: Path) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"jwt_secret": "short"}, "at least 32"),
        ({"cors_origins": ["*"]}, "wildcard"),
        ({"cors_origins": ["ops.example"]}, "exact origins"),
        ({"allowed_ips": ["10.0.0.300/8"]}, "not an IP"),
        ({"trusted_proxies": ["proxy"]}, "not an IP"),
        ({"base_path": "evertask"}, "absolute URL path"),
        ({"token_lifetime": timedelta(0)}, "positive"),
        ({"websocket_buffer_size": 0}, "at least 1"),
        ({"password": ""}, "must not be empty"),
        ({"max_failed_logins": 0}, "throttle"),
    ]
    for values, message in bad:
        with pytest.raises(ConfigurationError, match=message):
            MonitoringOptions(**values).validate()
    with pytest.raises(ConfigurationError, match="Unknown monitoring option"):
        add_evertask(None, lambda o: o.register_handler(tasks.WorkHandler)).add_monitoring_api(
            colour="blue"
        )
    assert MonitoringOptions(base_path="/ops/").validate().base_path == "/ops"
    no_storage = add_evertask(
        None,
        lambda o: o.register_handler(tasks.WorkHandler).set_default_retry_policy(NoRetryPolicy()),
    ).add_monitoring_api(lambda o: o.set_credentials(USERNAME, PASSWORD))
    with pytest.raises(ConfigurationError, match="needs? a storage|from a storage"):
        no_storage.build()


def test_login_throttle_is_bounded_and_slides() -> None:
    now = [0.0]
    throttle = LoginThrottle(2, 10, max_keys=3, clock=lambda: now[0])
    throttle.record_failure(["a"])
    throttle.record_failure(["a"])
    assert throttle.retry_after(["a"]) == 10
    now[0] = 4.5
    assert throttle.retry_after(["a", "b"]) == 6
    now[0] = 10.0
    assert throttle.retry_after(["a"]) is None
    for key in "bcdef":
        throttle.record_failure([key])
    assert len(throttle._failures) == 3


def test_a_token_lives_at_least_its_lifetime_in_whole_seconds() -> None:
    tokens = TokenService(SECRET, "evertask-monitor", "evertask-monitor", timedelta(seconds=1))
    for fraction in (0, 1, 500_000, 999_999):
        issued = datetime(2026, 11, 28, 14, 0, 0, fraction, tzinfo=UTC)
        token, expires = tokens.issue(USERNAME, now=issued)
        assert expires.microsecond == 0
        assert issued + timedelta(seconds=1) <= expires < issued + timedelta(seconds=2)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] == expires.timestamp() and claims["iat"] <= issued.timestamp()
