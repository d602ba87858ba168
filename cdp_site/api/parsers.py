"""The API's JSON parser: DRF's, refusing text PostgreSQL cannot hold.

DRF's ``CharField`` already refuses a NUL, but a ``JSONField`` (a tracking plan's schema, an
audience rule, a field's options) or a key of any object does not, and the database would
answer with an error (a 500). Refusing at the parser covers every body of the API at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from cdp_site.text import NUL_MESSAGE, contains_nul


class StrictJSONParser(JSONParser):
    def parse(self, stream: IO[Any], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise ParseError(NUL_MESSAGE, code="invalid_text")
        return data
