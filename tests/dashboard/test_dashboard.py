"""The dashboard in a real headless Chromium, against the real service and a real worker.

The tests run in file order and share one service, one worker and one browser: the prune job
watched live in the first is the one whose per-layer picture the second checks, and the sweep
of the third runs while nothing else does. Each page is looked at 1280 and 390 pixels wide
(nothing wider than the window, a screenshot of each).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.reviews import REVIEWS_TRAIN
from tests.worker.harness import prune_spec, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "custom"
#: What the tests hand from one to the next (they share one service; see the module docstring).
RUN: dict[str, Any] = {}
TERMINAL = {"succeeded", "failed", "cancelled"}


def look(page: Any, shots: Path, name: str) -> None:
    """The page at 1280 and 390 px: nothing wider than the window, the navigation reachable; a screenshot of each."""
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} is {overflow}px wider than a {width}px window"
        if page.locator("header.top nav").count():
            assert page.locator("header.top nav a[href='/ui/jobs']").is_visible()
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def submit(api: httpx.Client, spec: dict[str, Any]) -> str:
    r = api.post("/jobs", json=spec)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def job_state(api: httpx.Client, job_id: str) -> str:
    return api.get(f"/jobs/{job_id}").json()["state"]


def small_prune(models: dict[str, Path], **overrides: Any) -> dict[str, Any]:
    spec = prune_spec(models["tiny"], FIXTURES)
    spec["measure"] = {"seconds_per_batch": 1.0, "max_seconds": 2.0}
    return {**spec, **overrides}


def test_sign_in_leads_to_the_jobs_list(session_page, shots, browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    login = context.new_page()
    login.goto("/ui/jobs/123")
    assert "/ui/login?next=" in login.url
    look(login, shots, "login")
    context.close()
    page, _ = session_page()
    page.wait_for_url("**/ui/jobs")
    assert page.locator(".owner").inner_text() == "tester"
    page.wait_for_selector("#empty:not([hidden]), #jobs tbody tr", state="attached")


def test_a_queued_prune_job_runs_to_succeeded_live_while_a_running_one_is_cancelled_from_its_page(
    session_page, api, models, shots
):
    # A long job takes the only worker, so the next one stays queued while its page is open.
    slow = submit(
        api,
        {
            **prune_spec(models["wide"], FIXTURES),
            # wide FFNs clustered on many sampled tokens, then a timing whose budget is max_seconds,
            # not a share of the run: seconds of work in every stage, time to cancel it mid-way
            "params": {"max_instances": 48, "sampling_tokens": 1500},
            "measure": {"seconds_per_batch": 20, "max_seconds": 60, "max_fraction": None, "repeats": 100},
        },
    )
    wait_for(lambda: job_state(api, slow) == "running", 60, "the long job to start")
    watched = submit(api, small_prune(models))
    RUN["prune"], RUN["slow"] = watched, slow
    sweep = {**small_prune(models), "kind": "sweep", "targets": {"flops_reduction": [0.1, 0.2]}}
    sweep.pop("target")
    sweep["measure"] = {"seconds_per_batch": 0.5, "max_seconds": 1.0}
    RUN["sweep"] = submit(api, sweep)  # queued behind the watched job; the sweep test looks at it

    page, _ = session_page()
    page.wait_for_url("**/ui/jobs")
    page.wait_for_selector(f"tr[data-job='{watched}'][data-state='queued']")
    page.wait_for_selector(f"tr[data-job='{slow}'][data-state='running']")
    look(page, shots, "jobs")
    listing = page.context.new_page()  # the list stays open and must follow the job without a reload
    listing.goto("/ui/jobs")
    listing.wait_for_selector(f"tr[data-job='{watched}'][data-state='queued']")
    listing.evaluate("window.__sameDocument = true")
    page.goto(f"/ui/jobs/{watched}")
    assert page.locator("#state").inner_text() == "queued"
    page.evaluate(
        """() => { window.__seen = [document.getElementById('state').textContent]; window.__sameDocument = true;
        new MutationObserver(() => window.__seen.push(document.getElementById('state').textContent))
          .observe(document.getElementById('state'), {childList: true, characterData: true, subtree: true}); }"""
    )

    other = page.context.new_page()
    other.goto(f"/ui/jobs/{slow}")
    other.wait_for_selector("#state.state-running")
    other.once("dialog", lambda dialog: dialog.accept())
    other.click("#cancel")
    other.wait_for_selector("#state.state-cancelled", timeout=60_000)
    assert job_state(api, slow) == "cancelled"
    assert other.locator("#delete").is_visible() and not other.locator("#cancel").is_visible()
    look(other, shots, "job-cancelled")
    other.close()

    page.wait_for_selector("#state.state-succeeded", timeout=90_000)
    seen = page.evaluate("window.__seen")
    assert page.evaluate("window.__sameDocument") is True  # never reloaded
    assert seen[0] == "queued" and "running" in seen and seen[-1] == "succeeded", seen
    assert page.locator("#fraction").inner_text() == "100%"
    stages = page.locator("#stages tbody tr").all_inner_texts()
    assert any(s.startswith("collect") for s in stages) and any(s.startswith("measure") for s in stages), stages
    assert page.locator("#events tbody tr").count() >= 5
    assert job_state(api, watched) == "succeeded"
    listing.wait_for_selector(f"tr[data-job='{watched}'][data-state='succeeded']", timeout=10_000)
    assert listing.evaluate("window.__sameDocument") is True
    listing.close()


def test_the_job_page_shows_the_reports_numbers(page, api, shots):
    job_id = RUN["prune"]
    report = api.get(f"/jobs/{job_id}/artifacts/report.json").json()
    page.goto(f"/ui/jobs/{job_id}")
    page.wait_for_selector("#layers-card:not([hidden])")
    rows = page.locator("#layers tbody tr")
    assert rows.count() == len(report["layers"])
    for layer in report["layers"]:
        row = page.locator(f"#layers tbody tr[data-layer='{layer['layer']}']")
        for key in ("heads_kept", "heads_total", "neurons_kept", "neurons_total"):
            assert int(row.locator(f".{key.replace('_', '-')}").inner_text()) == layer[key], (layer, key)
        for kind in ("heads", "neurons"):
            bar = page.locator(f"#layers-chart rect[data-layer='{layer['layer']}'][data-kind='{kind}']")
            assert int(bar.get_attribute("data-kept")) == layer[f"{kind}_kept"]
            assert int(bar.get_attribute("data-total")) == layer[f"{kind}_total"]
    cost = page.locator("#cost").inner_text()
    assert f"{report['cost']['before']['params']['total']:,}" in cost
    assert f"{report['cost']['after']['params']['total']:,}" in cost
    assert page.locator("#speed tbody tr").count() == len(report["speed"]["by_batch"])
    assert page.locator("#speed-chart svg line.ideal").count() == 1
    artifacts = api.get(f"/jobs/{job_id}/artifacts").json()
    for artifact in artifacts:
        row = page.locator(f"#artifacts tr[data-artifact='{artifact['name']}']")
        assert int(row.locator(".size").get_attribute("data-bytes")) == artifact["size"]
    href = page.locator("#artifacts tr[data-artifact='report.json'] a").get_attribute("href")
    assert page.request.get(href).json() == report  # the download link serves the report itself
    assert "ppruning submit -" in page.locator("#command").inner_text()
    assert page.locator("#record-block").is_visible()
    look(page, shots, "job")


def test_a_sweeps_plot_has_one_point_per_child(page, api, models, shots):
    sweep = RUN["sweep"]  # submitted behind the watched prune job: it ran while the job page was checked
    page.goto(f"/ui/jobs/{sweep}")
    wait_for(lambda: job_state(api, sweep) in TERMINAL, 120, "the sweep to end")
    page.wait_for_selector("#state.state-succeeded", timeout=30_000)
    children = api.get("/jobs", params={"parent": sweep}).json()["items"]
    assert len(children) == 2 and all(c["state"] == "succeeded" for c in children)
    page.wait_for_selector("#sweep-chart svg")
    points = page.locator("#sweep-chart a.sweep-point")
    assert points.count() == len(children)
    linked = {p.get_attribute("data-job") for p in points.all()}
    assert linked == {c["id"] for c in children}
    assert page.locator("#sweep-chart a.sweep-point[data-pareto='1']").count() >= 1
    look(page, shots, "sweep")
    points.first.click()
    page.wait_for_url(re.compile(r".*/ui/jobs/[0-9a-f-]{36}$"))
    assert page.url.rsplit("/", 1)[1] in linked
    RUN["children"] = sorted(linked)


def test_compare_shows_finished_jobs_side_by_side(page, shots):
    ids = [RUN["prune"], *RUN["children"]]
    page.goto("/ui/compare?" + "&".join(f"id={i}" for i in ids))
    page.wait_for_selector("#compare thead th[data-job]")
    assert page.locator("#compare thead th[data-job]").count() == len(ids)
    assert page.locator("#compare-layers svg").count() == len(ids)
    look(page, shots, "compare")


def test_the_submit_form_creates_a_job_and_names_the_field_of_a_bad_target(session_page, api, models, shots):
    page, watch = session_page()
    watch.expected.append("status of 422")  # the refused spec: the browser logs the answer it was given
    page.wait_for_url("**/ui/jobs")
    page.goto("/ui/submit")
    page.wait_for_selector("#f-method option[value='ppruning']", state="attached")
    page.fill("#f-model-id", str(models["tiny"]))
    page.select_option("#f-task-name", "text-classification")
    page.fill("#f-task-data_files-train", str(REVIEWS_TRAIN))
    page.fill("#f-task-text_column", "review")
    page.fill("#f-task-label_column", "sentiment")
    page.fill("#f-target-value", "0.9")  # more than this model can lose
    page.fill("#f-extra", '{"params": {"max_instances": 32, "sampling_tokens": 40}, "measure": false}')
    page.click("#submit-button")
    note = page.locator("[data-row='target.value'] .field-error")
    note.wait_for(state="visible")
    assert "target.flops_reduction" in note.inner_text()
    assert page.locator("#f-target-value").get_attribute("aria-invalid") == "true"
    look(page, shots, "submit-error")
    page.select_option("#f-kind", "sweep")  # another kind keeps what was typed; a sweep's bad target is named too
    assert page.input_value("#f-model-id") == str(models["tiny"])
    page.fill("#f-targets", "0.1, 0.9")
    page.click("#submit-button")
    sweep_note = page.locator("[data-row='targets'] .field-error")
    sweep_note.wait_for(state="visible")
    assert "targets.flops_reduction.1" in sweep_note.inner_text()
    page.select_option("#f-kind", "prune")
    assert page.input_value("#f-task-data_files-train") == str(REVIEWS_TRAIN)
    before = {j["id"] for j in api.get("/jobs", params={"limit": 100}).json()["items"]}
    page.fill("#f-target-value", "0.1")
    page.click("#submit-button")
    page.wait_for_url(re.compile(r".*/ui/jobs/[0-9a-f-]{36}$"))
    made = page.url.rsplit("/", 1)[1]
    assert made not in before
    job = api.get(f"/jobs/{made}").json()
    assert job["spec"]["target"]["flops_reduction"] == 0.1 and job["spec"]["model"]["id"] == str(models["tiny"])
    assert page.locator("#state").inner_text() in {"queued", "running"}
    api.post(f"/jobs/{made}/cancel")  # it has shown what it had to; the worker need not run it


def rows(page, attribute: str) -> list[str | None]:  # type: ignore[no-untyped-def]
    """One attribute of every row of the jobs table, read in one call: the table is redrawn
    every 2 s, so reading row by row can meet a row that was there a moment ago."""
    return page.eval_on_selector_all("#jobs tbody tr", f"rows => rows.map(r => r.getAttribute('data-{attribute}'))")


def test_the_jobs_list_filters_and_pages(page, api, models):
    everything = api.get("/jobs", params={"limit": 100}).json()["items"]
    assert len(everything) >= 5
    page.goto("/ui/jobs?limit=2")
    page.wait_for_selector("#jobs tbody tr")
    first = rows(page, "job")
    assert first == [j["id"] for j in everything[:2]]
    page.click("#older")
    page.wait_for_selector(f"#jobs tbody tr[data-job='{everything[2]['id']}']")
    page.click("#newer")
    page.wait_for_selector(f"#jobs tbody tr[data-job='{everything[0]['id']}']")
    page.goto("/ui/jobs")
    page.select_option("#filters select[name=state]", "cancelled")
    page.fill("#filters input[name=method]", "ppruning")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/ui/jobs?state=cancelled&method=ppruning")

    def shown() -> set[str | None]:
        return set(rows(page, "job"))

    def cancelled() -> set[str]:  # the API's answer to the same filters (the list refreshes every 2 s)
        items = api.get("/jobs", params={"state": "cancelled", "method": "ppruning", "limit": 100}).json()["items"]
        return {j["id"] for j in items}

    wait_for(lambda: shown() == cancelled() and RUN["slow"] in shown(), 15, "the filtered list")
    assert set(rows(page, "state")) == {"cancelled"}
    page.fill("#filters input[name=model]", str(models["wide"]))
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#jobs tbody tr').length === 1")
    assert page.locator("#jobs tbody tr").get_attribute("data-job") == RUN["slow"]


def test_another_owners_key_sees_none_of_it(session_page, other_key, base_url, shots):
    page, watch = session_page(other_key)
    page.wait_for_url("**/ui/jobs")
    page.wait_for_selector("#empty:not([hidden])")
    assert page.locator("#jobs tbody tr").count() == 0
    watch.expected.append("404")  # the pages below are refused on purpose
    response = page.goto(f"/ui/jobs/{RUN['prune']}")
    assert response.status == 404 and page.locator("#missing").is_visible()
    look(page, shots, "not-found")
    for path in [
        f"/jobs/{RUN['prune']}",
        f"/jobs/{RUN['prune']}/artifacts/report.json",
        f"/jobs/{RUN['sweep']}/events",
    ]:
        assert page.request.get(path).status == 404, path
    compare = page.goto(f"/ui/compare?id={RUN['prune']}&id={RUN['sweep']}")
    assert compare.status == 200 and page.locator("#compare thead th[data-job]").count() == 0


def test_a_state_change_without_the_csrf_token_is_refused(session_page, api):
    page, watch = session_page()
    watch.expected.append("status of 403")  # the refusals this test asks for
    page.wait_for_url("**/ui/jobs")
    job_id = RUN["slow"]  # cancelled: a finished job, which delete removes
    page.goto(f"/ui/jobs/{job_id}")
    without = page.evaluate(
        "async (id) => (await fetch(`/jobs/${id}`, {method: 'DELETE', credentials: 'same-origin'})).status", job_id
    )
    assert without == 403
    forged = page.evaluate(
        "async (id) => (await fetch(`/jobs/${id}`, {method: 'DELETE', headers: {'X-CSRF-Token': 'forged'}}))"
        ".status",
        job_id,
    )
    assert forged == 403
    assert api.get(f"/jobs/{job_id}").status_code == 200  # still there
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")  # the page's own button carries the token
    page.wait_for_url("**/ui/jobs")
    assert api.get(f"/jobs/{job_id}").status_code == 404


def test_sign_out_ends_the_session(session_page):
    page, watch = session_page()
    watch.expected.append("status of 401")  # the API refuses the cookie that no longer exists
    page.wait_for_url("**/ui/jobs")
    page.click(".signout button")
    page.wait_for_url("**/ui/login")
    page.goto("/ui/jobs")
    assert "/ui/login" in page.url
    status = page.evaluate("async () => (await fetch('/jobs')).status")
    assert status == 401


def test_a_rejected_gate_marks_the_failing_criterion(page, pg_url, shots):
    """A pipeline's verdict as the worker decides it (``worker.gates.decide``): the speedup fails, the metric passes."""
    from jobs.specs import AcceptCriteria
    from jobs.store import repository
    from jobs.store.models import Job, utcnow
    from jobs.store.session import session_scope
    from ppruning import get_task
    from worker.gates import decide

    accept = AcceptCriteria(max_metric_drop=0.05, min_speedup=1.5)
    pruned, dense = {"validation": {"accuracy": 0.90}}, {"validation": {"accuracy": 0.91}}
    speed = {"measured": True, "speedup": 1.2, "speedup_batch_size": 8, "device": "cpu"}
    gate = decide(accept, get_task("sst2"), pruned, dense, speed)
    assert gate["verdict"] == "rejected"
    with session_scope(pg_url) as session:
        spec = {"kind": "pipeline", "model": {"id": "bert-base-uncased"}, "method": "ppruning",
                "target": {"flops_reduction": 0.3}, "accept": accept.model_dump()}  # fmt: skip
        job = Job(owner="tester", kind="pipeline", state="succeeded", progress=1.0, attempts=1, cancel_requested=False,
                  spec=spec, result={"verdict": gate["verdict"], "gate": gate}, started_at=utcnow(),
                  finished_at=utcnow())  # fmt: skip
        session.add(job)
        session.flush()
        repository.record_metrics(session, job.id, {"validation": pruned["validation"]})
        job_id = job.id
    page.goto(f"/ui/jobs/{job_id}")
    page.wait_for_selector("#verdict.verdict-rejected")
    assert "1.5" in page.locator("#verdict").inner_text()
    assert page.locator("#gate tr.fail[data-criterion='speedup']").count() == 1
    assert page.locator("#gate tr.pass").count() == 1
    look(page, shots, "gate")
