"""The dashboard's session: sign-in with an API key into a signed HttpOnly cookie, CSRF on every
state change, the API's owner isolation, sign-out; and the list filters the dashboard uses."""

from __future__ import annotations

import re

import pytest

from jobs.store import keys
from jobs.store.session import session_scope

pytestmark = pytest.mark.service


def _key(auth: dict[str, str]) -> str:
    return auth["Authorization"].removeprefix("Bearer ")


def sign_in(client, key: str) -> str:
    """Sign in through the form, as a browser does; the session's CSRF token from the page."""
    form = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    r = client.post("/ui/login", data={"api_key": key, "csrf": token, "next": "/ui/jobs"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui/jobs"
    page = client.get("/ui/jobs")
    assert page.status_code == 200
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)


def test_sign_in_sets_a_signed_httponly_samesite_cookie_with_an_expiry(client, auth):
    form = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    r = client.post("/ui/login", data={"api_key": _key(auth), "csrf": token}, follow_redirects=False)
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("ppruning_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie
    assert _key(auth) not in cookie  # the key itself never leaves the server again


def test_a_page_without_a_session_redirects_to_sign_in_and_a_bad_key_is_refused(client):
    r = client.get("/ui/jobs?state=running", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=%2Fui%2Fjobs%3Fstate%3Drunning")
    form = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    r = client.post("/ui/login", data={"api_key": "pp_unknown", "csrf": token}, follow_redirects=False)
    assert r.status_code == 401 and "unknown API key" in r.text
    assert "ppruning_session" not in r.headers.get("set-cookie", "")


def test_sign_in_without_the_forms_token_is_refused(client, auth):
    client.get("/ui/login")
    r = client.post("/ui/login", data={"api_key": _key(auth), "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    assert "ppruning_session" not in r.headers.get("set-cookie", "")


def test_an_altered_cookie_is_no_session(client, auth):
    sign_in(client, _key(auth))
    value = client.cookies.get("ppruning_session")
    client.cookies.clear()
    client.cookies.set("ppruning_session", value[:-2] + ("00" if not value.endswith("00") else "11"))
    assert client.get("/jobs").status_code == 401
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_a_state_change_with_the_session_needs_the_csrf_token(client, auth, prune_spec, dispatcher):
    csrf = sign_in(client, _key(auth))
    refused = client.post("/jobs", json=prune_spec)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "csrf_failed"
    wrong = client.post("/jobs", json=prune_spec, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    assert dispatcher.sent == []
    made = client.post("/jobs", json=prune_spec, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 202
    job_id = made.json()["id"]
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 403
    assert client.get(f"/jobs/{job_id}").json()["state"] == "queued"
    assert client.post(f"/jobs/{job_id}/cancel", headers={"X-CSRF-Token": csrf}).json()["state"] == "cancelled"
    assert client.delete(f"/jobs/{job_id}").status_code == 403
    assert client.delete(f"/jobs/{job_id}", headers={"X-CSRF-Token": csrf}).status_code == 204


def test_a_session_sees_only_its_owners_jobs(client, auth, other_auth, prune_spec):
    theirs = client.post("/jobs", json=prune_spec, headers=other_auth).json()["id"]
    sign_in(client, _key(auth))
    assert client.get("/jobs").json()["items"] == []
    assert client.get(f"/jobs/{theirs}").status_code == 404
    assert client.get(f"/jobs/{theirs}/artifacts").status_code == 404
    page = client.get(f"/ui/jobs/{theirs}")
    assert page.status_code == 404 and theirs in page.text and "No such job" in page.text


def test_a_revoked_key_ends_its_sessions(client, pg_url, owner):
    from api.auth import new_secret

    secret = new_secret()
    with session_scope(pg_url) as session:
        keys.create_api_key(session, f"dash-{owner}", owner, secret)
    sign_in(client, secret)
    with session_scope(pg_url) as session:
        keys.revoke_api_key(session, f"dash-{owner}")
    assert client.get("/jobs").status_code == 401
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_token_and_ends_the_session(client, auth):
    csrf = sign_in(client, _key(auth))
    assert client.post("/ui/logout", data={"csrf": "forged"}, follow_redirects=False).status_code == 403
    r = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_sign_in_goes_back_only_to_a_dashboard_page(client, auth):
    form = client.get("/ui/login?next=//evil.example/ui/")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    assert 'value="/ui/jobs"' in form.text
    r = client.post("/ui/login", data={"api_key": _key(auth), "csrf": token, "next": "https://evil.example/"},
                    follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/ui/jobs"


def test_jobs_filter_by_model_and_method_and_list_them(client, auth, prune_spec, model_root):
    client.post("/jobs", json=prune_spec, headers=auth)
    client.post("/jobs", json={**prune_spec, "method": "random"}, headers=auth)
    everything = client.get("/jobs", headers=auth).json()["items"]
    assert {j["method"] for j in everything} == {"ppruning", "random"}
    assert {j["model"] for j in everything} == {str(model_root / "bert")}
    assert everything[0]["target"] == {"flops_reduction": 0.3}
    random_only = client.get("/jobs", params={"method": "random"}, headers=auth).json()["items"]
    assert [j["method"] for j in random_only] == ["random"]
    by_model = client.get("/jobs", params={"model": str(model_root / "bert")}, headers=auth).json()["items"]
    assert len(by_model) == 2
    assert client.get("/jobs", params={"model": "other/model"}, headers=auth).json()["items"] == []
    from ppruning_client.http_client import Client

    sdk = Client("http://testserver", _key(auth), http=client)
    assert [j["method"] for j in sdk.jobs(method=["random"], model=[str(model_root / "bert")])["items"]] == ["random"]


def test_pages_and_assets_are_served_locally_with_a_strict_policy(client, auth):
    sign_in(client, _key(auth))
    for path in ["/ui/jobs", "/ui/submit", "/ui/compare"]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    assets = ["dashboard.css", "common.js", "job.js", "jobs.js", "charts.js", "sweep.js", "submit.js", "compare.js"]
    for asset in assets:
        assert client.get(f"/ui/static/{asset}").status_code == 200, asset


def test_the_job_pages_client_command_resubmits_the_same_spec(client, auth, prune_spec):
    import html

    made = client.post("/jobs", json=prune_spec, headers=auth).json()
    sign_in(client, _key(auth))
    page = client.get(f"/ui/jobs/{made['id']}").text
    command = html.unescape(re.search(r'<pre id="command">(.*?)</pre>', page, re.S).group(1))
    assert command.splitlines()[1] == "ppruning submit - <<'SPEC'" and command.endswith("\nSPEC")
    spec_text = command.split("<<'SPEC'\n", 1)[1].rsplit("\nSPEC", 1)[0]
    again = client.post("/jobs", content=spec_text, headers={**auth, "Content-Type": "application/json"})
    assert again.status_code == 202, again.text
    assert again.json()["spec"] == made["spec"]
