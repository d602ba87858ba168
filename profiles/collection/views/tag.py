"""Serving strata.js, Strata's web tag, from the Strata host itself (no build step).

The file is read from the static folder (``static/strata/strata.js``), kept in memory with its
gzipped form and an ETag, and answered with a cache lifetime of a few hours: the snippet's URL
is unversioned, so a fix must reach visitors within a day, while a revalidation costs a 304.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe

TAG_STATIC_PATH = "strata/strata.js"
CONTENT_TYPE = "text/javascript; charset=utf-8"
CACHE_CONTROL = "public, max-age=14400, stale-while-revalidate=86400"


@dataclass(frozen=True)
class TagFile:
    body: bytes
    gzipped: bytes
    etag: str


def tag_path() -> Path:
    """The tag's source: found like any static file, else in the repository's static folder."""
    found = finders.find(TAG_STATIC_PATH)
    if found:
        return Path(found)
    return Path(settings.BASE_DIR) / "static" / TAG_STATIC_PATH


@lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> TagFile:
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:20]
    return TagFile(body=body, gzipped=gzip.compress(body, 9, mtime=0), etag=f'"{digest}"')


def tag_file() -> TagFile:
    """The tag's bytes; re-read when the file changes (an edit shows without a restart)."""
    path = tag_path()
    return _load(path, path.stat().st_mtime_ns)


def _accepts_gzip(request: HttpRequest) -> bool:
    return any(
        part.split(";")[0].strip().lower() == "gzip"
        and part.replace(" ", "").lower() not in {"gzip;q=0", "gzip;q=0.0"}
        for part in request.META.get("HTTP_ACCEPT_ENCODING", "").split(",")
    )


def _etag_matches(request: HttpRequest, etag: str) -> bool:
    presented = request.META.get("HTTP_IF_NONE_MATCH", "")
    tags = {tag.strip().removeprefix("W/") for tag in presented.split(",")}
    return etag in tags or "*" in tags


@require_safe
def strata_js(request: HttpRequest) -> HttpResponse:
    """GET/HEAD /strata.js: the tag, cacheable by browsers and CDNs, loadable from any site."""
    tag = tag_file()
    if _etag_matches(request, tag.etag):
        response: HttpResponse = HttpResponseNotModified()
    elif _accepts_gzip(request):
        response = HttpResponse(tag.gzipped, content_type=CONTENT_TYPE)
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(tag.body, content_type=CONTENT_TYPE)
    response["ETag"] = tag.etag
    response["Cache-Control"] = CACHE_CONTROL
    response["Access-Control-Allow-Origin"] = "*"  # lets sites use crossorigin / SRI
    response["Cross-Origin-Resource-Policy"] = "cross-origin"  # loadable under COEP
    patch_vary_headers(response, ["Accept-Encoding"])
    return response
