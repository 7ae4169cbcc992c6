"""``/ui``: the dashboard's pages, sign-in and sign-out.

Pages are rendered here with the facts the server already holds (the job's spec, the
equivalent client command, the session's CSRF token); the JS modules in ``static/`` fill
in and follow everything else through the JSON API. A page without a valid session
redirects to the sign-in form; a job of another owner is a 404 page, as in the API.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from api.auth import authenticate, owner_of_key_hash
from api.dashboard import session as sessions
from api.deps import SessionDep
from api.errors import Unauthorized
from jobs.kinds import job_kinds
from jobs.store import repository
from jobs.store.keys import hash_key
from jobs.store.states import JobState

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")

router = APIRouter(prefix="/ui", include_in_schema=False)

#: The sign-in form's own CSRF token (double submit: this cookie and the form field must match).
LOGIN_COOKIE = "ppruning_login_csrf"
#: Pages load scripts, styles and images from this service only; nothing inline runs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
#: The spec kinds the submit form builds.
FORM_KINDS = ("prune", "pipeline", "sweep")


def _page(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def _signed_in(request: Request, db: SessionDep) -> tuple[str, sessions.DashboardSession] | None:
    """(owner, session) when the cookie is valid and its key still is; None otherwise."""
    session = sessions.current_session(request)
    if session is None:
        return None
    try:
        return owner_of_key_hash(db, session.key_hash, request.app.state.bootstrap_keys), session
    except Unauthorized:
        return None


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def _safe_next(value: str | None) -> str:
    """Only a path of this dashboard: ``//evil.example`` or a full URL would make the form an open redirect."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/jobs"


def _common(owner: str, session: sessions.DashboardSession, page: str, **extra: Any) -> dict[str, Any]:
    return {"owner": owner, "csrf": session.csrf, "page": page, **extra}


async def _form(request: Request) -> dict[str, str]:
    """An url-encoded form body (the only kind these forms send), first value of each field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


# --------------------------------------------------------------------------- sign-in and sign-out


@router.get("")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, _safe_next(next))


def _login_page(request: Request, next_path: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = _page(
        request, "login.html", {"login_csrf": token, "next": next_path, "error": error, "page": "login"}, status_code
    )
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/ui/login", httponly=True, samesite="strict")
    return response


@router.post("/login")
async def login(request: Request, db: SessionDep) -> Response:
    """Check the key as the API does, then start a session holding its digest."""
    form = await _form(request)
    next_path = _safe_next(form.get("next"))
    cookie_token = request.cookies.get(LOGIN_COOKIE) or ""
    if not cookie_token or not secrets.compare_digest(cookie_token, form.get("csrf", "")):
        return _login_page(request, next_path, "The form expired; sign in again.", status_code=403)
    key = form.get("api_key", "").strip()
    try:
        authenticate(db, f"Bearer {key}", request.app.state.bootstrap_keys)
    except Unauthorized as exc:
        return _login_page(request, next_path, f"Not signed in: {exc.message}.", status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    sessions.set_cookie(request, response, sessions.DashboardSession.new(hash_key(key), _lifetime(request)))
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


def _lifetime(request: Request) -> int:
    return int(request.app.state.settings.dashboard_session_s)


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = sessions.current_session(request)
    form = await _form(request)
    if session is not None:
        sessions.check_csrf(request, session, form.get("csrf", ""))
    response = RedirectResponse("/ui/login", status_code=303)
    sessions.clear_cookie(response)
    return response


# --------------------------------------------------------------------------- pages


@router.get("/jobs")
def jobs_page(request: Request, db: SessionDep) -> Response:
    signed = _signed_in(request, db)
    if signed is None:
        return _to_login(request)
    owner, session = signed
    filters = {"states": [s.value for s in JobState], "kinds": sorted(job_kinds())}
    return _page(request, "jobs.html", _common(owner, session, "jobs", filters=filters))


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, db: SessionDep) -> Response:
    signed = _signed_in(request, db)
    if signed is None:
        return _to_login(request)
    owner, session = signed
    job = _owned(db, owner, job_id)
    if job is None:
        return _page(request, "missing.html", _common(owner, session, "missing", job_id=job_id), 404)
    spec_text = json.dumps(job.spec, indent=2, sort_keys=True)
    command = client_command(str(request.app.state.settings.base_url), spec_text)
    context = _common(owner, session, "job", job=job, spec_text=spec_text, command=command)
    return _page(request, "job.html", context)


@router.get("/compare")
def compare_page(request: Request, db: SessionDep) -> Response:
    signed = _signed_in(request, db)
    if signed is None:
        return _to_login(request)
    owner, session = signed
    ids = [i for i in request.query_params.getlist("id") if _owned(db, owner, i) is not None]
    return _page(request, "compare.html", _common(owner, session, "compare", ids=ids))


@router.get("/submit")
def submit_page(request: Request, db: SessionDep) -> Response:
    signed = _signed_in(request, db)
    if signed is None:
        return _to_login(request)
    owner, session = signed
    return _page(request, "submit.html", _common(owner, session, "submit", kinds=FORM_KINDS))


def _owned(db: SessionDep, owner: str, job_id: str) -> Any:
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        return None
    return repository.get_job(db, parsed, owner)


def client_command(base_url: str, spec_text: str) -> str:
    """The shell lines that submit the same spec with the CI client (the key comes from the environment)."""
    return (
        f"export PPRUNING_URL={base_url.rstrip('/')}  # and PPRUNING_API_KEY\n"
        f"ppruning submit - <<'SPEC'\n{spec_text}\nSPEC"
    )
