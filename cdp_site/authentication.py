"""`Authorization: Bearer stk_…` for the management and profile APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from cdp_site.access import authenticate_access_token
from cdp_site.client import client_ip
from cdp_site.tenancy import Actor, actor_for_token, session_actor

if TYPE_CHECKING:
    from rest_framework.request import Request

    from cdp_site.models import AccessToken

# A token request's actor, kept on the underlying HttpRequest (which does not declare it:
# request_actor is the typed way to read it).
_TOKEN_ACTOR_ATTR = "strata_actor"


class InvalidToken(exceptions.AuthenticationFailed):
    default_detail = "The access token is not valid."
    default_code = "invalid_token"


class TokenUser:
    """The principal of a token request: the token itself, not its creator."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: AccessToken) -> None:
        self.token = token

    def get_username(self) -> str:
        return f"token:{self.token.prefix}"

    def __str__(self) -> str:
        return self.get_username()


class AccessTokenAuthentication(BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise InvalidToken()
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise InvalidToken() from None
        ip = client_ip(request._request)
        token = authenticate_access_token(secret, ip)
        if token is None:
            raise InvalidToken()
        setattr(request._request, _TOKEN_ACTOR_ATTR, actor_for_token(token, ip))
        return TokenUser(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="strata"'


def request_actor(request: Request) -> Actor | None:
    """The actor of an authenticated API request (token or session), or None."""
    actor = getattr(request._request, _TOKEN_ACTOR_ATTR, None)
    if isinstance(actor, Actor):
        return actor
    user = request.user
    if user is not None and user.is_authenticated:
        return session_actor(request._request)
    return None


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = AccessTokenAuthentication
    name = "AccessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "stk_…"}
