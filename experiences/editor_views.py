"""The experience editor's pages (under /experiences/, namespace ``experiences``): New and
Edit, and the dry run the editor calls as the marketer types (``POST _check/``).

The page hands the editor (``static/strata/experiences/editor.js``) the experience in the
management API's input shape and the catalog (``experiences.editor``); the editor saves
through the management API with the session (POST or PATCH /api/v1/experiences/…), so the
page, the API and the admin refuse the same things with the same codes
(``experiences.lifecycle``). Needs ``experiences.edit``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from cdp_site.shell import page_actor, render_page, strata_page
from experiences import editor, lifecycle
from experiences.api.serializers import ExperienceInputSerializer
from experiences.models import Experience

if TYPE_CHECKING:
    from django.http import HttpRequest

SECTION = "experiences"
MAX_BODY = 256 * 1024

NEW_EXPERIENCE: dict[str, Any] = {
    "key": "", "name": "", "description": "", "type": "ab", "distribution": "equal",
    "value_type": "json", "traffic_allocation": 1.0, "target": "everyone",
    "target_audiences": [], "goals": [], "status": "draft", "phase": 0,
    "variants": [
        {"key": "base", "name": "Base", "value": {}, "content": {}, "base": True,
         "weight": None, "audience": None, "priority": 0},
        {"key": "variant-1", "name": "Variant 1", "value": {}, "content": {}, "base": False,
         "weight": None, "audience": None, "priority": 1},
    ],
}


def _editor(request: HttpRequest, exp: Experience | None) -> HttpResponse:
    actor = page_actor(request)
    state = editor.experience_state(exp) if exp is not None else NEW_EXPERIENCE
    return render_page(request, "experiences/editor.html", {
        "exp": exp,
        "catalog": editor.catalog(actor.account),
        "editor_config": {
            "experience": state,
            "existing": exp.key if exp is not None else None,
            "can_create_goals": actor.has("goals.edit"),
            "api": {
                "experiences": "/api/v1/experiences/",
                "goals": "/api/v1/goals/",
                "check": reverse("experiences:check"),
                "page": reverse("experiences:list"),
            },
        },
    }, section=SECTION, title=f"Edit {exp.name}" if exp is not None else "New experience")


@require_GET
@strata_page("experiences.edit")
def experience_new(request: HttpRequest) -> HttpResponse:
    return _editor(request, None)


@require_GET
@strata_page("experiences.edit")
def experience_edit(request: HttpRequest, key: str) -> HttpResponse:
    exp = Experience.objects.filter(account=page_actor(request).account, key=key).first()
    if exp is None:
        return render_page(request, "cdp_site/404.html", {
            "heading": "No such experience",
            "message": f"This account has no experience “{key}”.",
            "back_url": reverse("experiences:list"), "back_label": "All experiences",
        }, section=SECTION, title="Not found", status=404)
    return _editor(request, exp)


def _refusal(code: str, message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


def _shape_problems(errors: Any, path: str = "") -> list[dict[str, str]]:
    """The serializer's errors as the lifecycle's problems (field paths like variants[0].key)."""
    found: list[dict[str, str]] = []
    if isinstance(errors, dict):
        for name, inner in errors.items():
            found += _shape_problems(inner, f"{path}.{name}" if path else str(name))
    elif isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        found += [lifecycle.problem("invalid", f"{path}: {e}", path) for e in errors]
    elif isinstance(errors, list):
        for i, inner in enumerate(errors):
            found += _shape_problems(inner, f"{path}[{i}]")
    return [p for p in found if p["message"]]


@require_POST
@strata_page("experiences.edit")
def editor_check(request: HttpRequest) -> HttpResponse:
    """The dry run: ``{"existing": key or null, "changes": {...}}`` in, what saving would do
    out (``refused``, ``blockers``, ``new_phase``, ``next_phase``). Writes nothing."""
    if len(request.body) > MAX_BODY:
        return _refusal("too_large", "The experience is too large to check.", 413)
    try:
        body = json.loads(request.body)
    except ValueError:
        return _refusal("invalid_json", "The body is not JSON.")
    if not isinstance(body, dict) or not isinstance(body.get("changes"), dict):
        return _refusal("invalid_body", "Send {\"existing\": key or null, \"changes\": {…}}.")
    account = page_actor(request).account
    exp = None
    if body.get("existing"):
        exp = Experience.objects.filter(account=account, key=str(body["existing"])).first()
        if exp is None:
            return _refusal("not_found", "This account has no such experience.", 404)
    shape = ExperienceInputSerializer(data=body["changes"], partial=exp is not None)
    if not shape.is_valid():
        return JsonResponse({"refused": _shape_problems(shape.errors), "blockers": [],
                             "new_phase": "", "next_phase": 0})
    found = lifecycle.check_changes(account, exp, dict(shape.validated_data))
    return JsonResponse({"refused": found.refused, "blockers": found.blockers,
                         "new_phase": found.new_phase, "next_phase": found.next_phase})
