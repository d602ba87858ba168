"""Connector pages (under /connectors/, namespace ``connectors``): the jobs list, the creation
wizard (kind, then authorization, then configuration, with a "test connection" button that
makes one real call), a job's page (state, configuration, metrics chart, log, pause / resume /
run now) and the authorizations list (never a secret; a new one's signing secret is shown
once, on the page that created it).

Thin views over ``connectors.jobs`` and ``connectors.authorizations``; a refusal is shown on
the page and changes nothing. Reading needs ``jobs.view``; changes ``jobs.edit``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from cdp_site.shell import page_actor, render_page, strata_page
from connectors import authorizations, jobs
from connectors.errors import ConnectorError, InvalidInput
from connectors.models import Authorization, Job
from connectors.registry import kinds

if TYPE_CHECKING:
    from django.http import HttpRequest

SECTION = "connectors"
STATE_BADGES = {"running": "badge ok", "sleeping": "badge", "failed": "badge bad",
                "paused": "badge warn", "completed": "badge done"}


def _job(request: HttpRequest, pk: int) -> Job | None:
    return (Job.objects.for_account(page_actor(request).account)
            .select_related("authorization").filter(pk=pk).first())


@strata_page("jobs.view")
def job_list(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    labels = {key: kind.label for key, kind in kinds().items()}
    rows = [{"job": job, "kind": labels.get(job.kind, job.kind),
             "badge": STATE_BADGES.get(job.state, "badge")}
            for job in Job.objects.for_account(actor.account).select_related("authorization")
            .order_by("name", "id")]
    return render_page(request, "connectors/jobs.html",
                       {"rows": rows, "can_edit": actor.has("jobs.edit")},
                       section=SECTION, title="Jobs")


@strata_page("jobs.view")
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    if job is None:
        return render_page(request, "404.html", title="Not found", status=404)
    runs = list(job.runs.order_by("-started_at", "-id")[:50])
    chart = {"labels": [r.started_at.strftime("%m-%d %H:%M") for r in reversed(runs)],
             **{name: [getattr(r, name) for r in reversed(runs)]
                for name in ("added", "removed", "omitted", "errors")}}
    kind = kinds().get(job.kind)
    return render_page(request, "connectors/job.html", {
        "job": job, "kind_label": kind.label if kind else job.kind,
        "badge": STATE_BADGES.get(job.state, "badge"), "runs": runs[:10], "chart": chart,
        "log": list(job.log.order_by("-at", "-id")[:100]),
        "config": json.dumps(job.config, indent=2, sort_keys=True),
        "can_edit": page_actor(request).has("jobs.edit"),
    }, section=SECTION, title=job.name)


@require_POST
@strata_page("jobs.edit")
def job_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    job = _job(request, pk)
    if job is None:
        return render_page(request, "404.html", title="Not found", status=404)
    actor = page_actor(request)
    done = {"pause": (jobs.pause_job, "paused"), "resume": (jobs.resume_job, "resumed"),
            "run": (jobs.run_now, "will run in a moment")}.get(action)
    if done is None:
        messages.error(request, f"Unknown action “{action}”.")
    else:
        try:
            done[0](job, actor)
            messages.success(request, f"{job.name} {done[1]}.")
        except InvalidInput as exc:
            messages.error(request, exc.message)
    return HttpResponseRedirect(reverse("connectors:job", args=[job.pk]))


@strata_page("jobs.edit")
def job_new(request: HttpRequest) -> HttpResponse:
    """Kind → authorization → configuration. "Test connection" makes one real call with the
    form as it is; "Create" saves it."""
    actor = page_actor(request)
    available = kinds()
    data = request.POST if request.method == "POST" else request.GET
    kind_key = data.get("kind", "")
    kind = available.get(kind_key)
    auths = (Authorization.objects.for_account(actor.account)
             .filter(kind=kind.authorization_kind) if kind and kind.authorization_kind
             else Authorization.objects.none())
    form = {"name": data.get("name", ""), "authorization": data.get("authorization", ""),
            "config": data.get("config") or (json.dumps(kind.example_config, indent=2)
                                             if kind else "{}"),
            "schedule": data.get("schedule", "interval"),
            "interval_seconds": data.get("interval_seconds", "300"),
            "cron": data.get("cron", "")}
    error: dict[str, str] | None = None
    test: dict[str, Any] | None = None
    if request.method == "POST" and kind is not None:
        try:
            config = json.loads(form["config"])
            auth_id = int(form["authorization"]) if form["authorization"] else None
            if "test" in request.POST:
                test = {"ok": True, "message": jobs.test_connection(
                    actor.account, actor, kind=kind_key, authorization_id=auth_id,
                    config=config)}
            else:
                job = jobs.create_job(
                    actor.account, actor, name=form["name"], kind=kind_key,
                    authorization_id=auth_id, config=config, schedule=form["schedule"],
                    interval_seconds=int(form["interval_seconds"] or 0), cron=form["cron"])
                messages.success(request, f"Job {job.name} created; its first run starts "
                                          "within a minute.")
                return HttpResponseRedirect(reverse("connectors:job", args=[job.pk]))
        except json.JSONDecodeError as exc:
            error = {"field": "config", "message": f"not JSON: {exc.msg} (line {exc.lineno})"}
        except ValueError as exc:
            if isinstance(exc, InvalidInput):
                error = {"field": exc.path, "message": exc.message}
            else:
                error = {"field": "interval_seconds", "message": "must be a whole number"}
        except ConnectorError as exc:
            test = {"ok": False, "message": exc.message, "code": exc.code}
    return render_page(request, "connectors/new_job.html", {
        "kinds": sorted(available.values(), key=lambda k: k.label), "kind": kind,
        "kind_key": kind_key, "authorizations": auths, "form": form, "error": error,
        "test": test, "schedules": Job.Schedule.choices,
    }, section=SECTION, title="New job")


@strata_page("jobs.view")
def authorization_list(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    created: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    if request.method == "POST":
        if not actor.has("jobs.edit"):
            return render_page(request, "cdp_site/403.html", title="Not allowed", status=403)
        secret = {k: v for k, v in {
            "bearer_token": request.POST.get("bearer_token", ""),
            "dsn": request.POST.get("dsn", "")}.items() if v}
        try:
            new = authorizations.create_authorization(
                actor.account, actor, name=request.POST.get("name", ""),
                kind=request.POST.get("kind", ""), base_url=request.POST.get("base_url", ""),
                secret=secret)
            created = {"obj": new.obj, "signing_secret": new.signing_secret}
        except InvalidInput as exc:
            error = {"field": exc.path, "message": exc.message}
    rows = (Authorization.objects.for_account(actor.account).order_by("name", "id"))
    used = {a.pk: list(a.jobs.values_list("name", flat=True)) for a in rows}
    return render_page(request, "connectors/authorizations.html", {
        "rows": [{"auth": a, "jobs": used[a.pk]} for a in rows], "created": created,
        "error": error, "kinds": Authorization.Kind.choices,
        "can_edit": actor.has("jobs.edit"),
    }, section=SECTION, title="Authorizations")
