"""Every outbound HTTP call a connector makes, bounded and kept off internal networks.

A URL's host is resolved once per request; each address is checked (loopback, private,
link-local, shared, reserved, multicast and cloud metadata addresses are refused unless the
account's allowlist names the host or a network holding the address) and the connection goes
to that checked address, with the host name kept for ``Host`` and TLS (SNI and certificate
checks), so a second DNS answer cannot move the call (DNS rebinding). Redirects are followed
by hand, each hop checked again. Every call has a deadline and a response size bound."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from connectors.errors import PermanentError, TransientError
from connectors.models import ConnectorSettings

MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_TIMEOUT = 10.0
MAX_REDIRECTS = 3
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192"))
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise PermanentError(f"the response from {self.url} is not JSON",
                                 code="response_not_json") from None


def allowlist(account_id: int) -> list[str]:
    row = ConnectorSettings.objects.filter(account_id=account_id).values_list(
        "outbound_allowlist", flat=True).first()
    return list(row or [])


def _is_internal(address: _IP) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address in METADATA_ADDRESSES or address.is_loopback or address.is_private
            or address.is_link_local or address.is_reserved or address.is_multicast
            or address.is_unspecified or address in ipaddress.ip_network("100.64.0.0/10"))


def _allowed(host: str, address: _IP, names: list[str]) -> bool:
    for name in names:
        entry = name.strip().lower()
        if entry == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def resolve(account_id: int, host: str, port: int, names: list[str] | None = None) -> str:
    """The one address this request will connect to, after the outbound rules."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise TransientError(f"cannot resolve {host}", code="dns_failed") from None
    names = allowlist(account_id) if names is None else names
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if _is_internal(address) and not _allowed(host, address, names):
            raise PermanentError(
                f"{host} resolves to {address}, an internal address; add it to the account's "
                "outbound allowlist to allow it", code="address_not_allowed")
    return str(addresses[0])


class Session:
    """Calls for one account over a run: its allowlist read once, connections kept alive
    per checked address (each request still resolves and checks its host)."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self.names = allowlist(account_id)
        self.pools: dict[tuple[str, str, str, int], urllib3.HTTPConnectionPool] = {}

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

    def _pool(self, scheme: str, host: str, address: str, port: int
              ) -> urllib3.HTTPConnectionPool:
        key = (scheme, host, address, port)
        if key not in self.pools:
            if scheme == "https":
                self.pools[key] = urllib3.HTTPSConnectionPool(
                    address, port, retries=False, maxsize=1, server_hostname=host,
                    assert_hostname=host)
            else:
                self.pools[key] = urllib3.HTTPConnectionPool(address, port, retries=False,
                                                             maxsize=1)
        return self.pools[key]

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = DEFAULT_TIMEOUT,
                max_bytes: int = MAX_RESPONSE_BYTES) -> Response:
        """One call (and its redirects) within ``timeout`` seconds in all; the answer whatever
        its status (``check_status`` classifies it). Refused addresses, oversize answers and
        too many redirects are permanent errors; timeouts and broken connections transient."""
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise PermanentError(f"not an http(s) URL: {url}", code="invalid_url")
            host = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = resolve(self.account_id, host, port, self.names)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            send = {**(headers or {}), "Host": parts.netloc.rsplit("@", 1)[-1]}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransientError(f"{host} did not answer in {timeout:g} s", code="timeout")
            pool = self._pool(parts.scheme, host, address, port)
            try:
                raw = pool.urlopen(method, path, body=body, headers=send, redirect=False,
                                   preload_content=False, assert_same_host=False,
                                   timeout=urllib3.Timeout(connect=min(remaining, 5.0),
                                                           read=remaining))
                data = _read(raw, max_bytes, deadline, url)
            except NewConnectionError:  # a subclass of the connect timeout in urllib3
                raise TransientError(f"cannot connect to {host}",
                                     code="connection_failed") from None
            except Urllib3Timeout:
                raise TransientError(f"{host} did not answer in {timeout:g} s",
                                     code="timeout") from None
            except (Urllib3Error, OSError) as exc:
                raise TransientError(f"cannot reach {host}: {type(exc).__name__}",
                                     code="connection_failed") from None
            if raw.status in (301, 302, 303, 307, 308) and raw.headers.get("Location"):
                url = urljoin(url, raw.headers["Location"])
                if raw.status == 303 or (raw.status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            return Response(status=raw.status, body=data, url=url,
                            headers={k.lower(): v for k, v in raw.headers.items()},
                            elapsed=time.monotonic() - started)
        raise PermanentError(f"more than {MAX_REDIRECTS} redirects from {url}",
                             code="too_many_redirects")


def request(account_id: int, method: str, url: str, *, headers: dict[str, str] | None = None,
            body: bytes | None = None, timeout: float = DEFAULT_TIMEOUT,
            max_bytes: int = MAX_RESPONSE_BYTES) -> Response:
    """One call in a session of its own (``Session.request``)."""
    session = Session(account_id)
    try:
        return session.request(method, url, headers=headers, body=body, timeout=timeout,
                               max_bytes=max_bytes)
    finally:
        session.close()


def _read(raw: Any, max_bytes: int, deadline: float, url: str) -> bytes:
    declared = raw.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raw.release_conn()
        raise PermanentError(f"the response from {url} is over {max_bytes} bytes",
                             code="response_too_large")
    chunks: list[bytes] = []
    size = 0
    for chunk in raw.stream(65536):
        size += len(chunk)
        if size > max_bytes:
            raise PermanentError(f"the response from {url} is over {max_bytes} bytes",
                                 code="response_too_large")
        if time.monotonic() > deadline:
            raise TransientError(f"{url} did not finish answering in time", code="timeout")
        chunks.append(chunk)
    return b"".join(chunks)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (integer seconds, or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def check_status(response: Response) -> Response:
    """2xx passes; 408, 429 and 5xx are transient (``Retry-After`` kept); other codes are
    permanent."""
    status = response.status
    if 200 <= status < 300:
        return response
    message = f"{response.url} answered {status}"
    if status in (408, 429) or status >= 500:
        raise TransientError(message, code=f"http_{status}",
                             retry_after=retry_after(response.headers.get("retry-after")))
    raise PermanentError(message, code=f"http_{status}")
