"""HTTP(S) fetching under a :class:`UrlPolicy`: the one place vecsim opens a connection to a URL.

Each hop (the first URL and every redirect) goes the same way:

1. the URL is parsed once: the scheme must be one the policy allows (``http`` / ``https``),
   credentials (``user:pass@``) are refused, the port may be any;
2. the host is resolved here (:func:`socket.getaddrinfo`), and **every** address it resolves to
   is checked against the policy (when ``block_private``): one refused address refuses the URL;
3. the connection goes to one of those checked addresses (pinned: :mod:`http.client` never
   resolves the name again, so a DNS answer that changes between check and connect, "DNS
   rebinding", cannot move the request), and the peer address is checked again once connected;
   the request carries the original ``Host`` header and, for https, SNI and certificate
   verification against the original host name;
4. the response body is counted as it arrives (a ``Content-Length`` over the limit is refused
   before reading; a body without one, or lying about it, is cut at ``max_bytes + 1``), each
   socket operation is bounded by the connect / read time-outs, and the whole exchange by the
   policy's ``deadline``.

Refusals by policy raise :class:`~vecsim.errors.UrlNotAllowedError`, a body over the limit
:class:`~vecsim.errors.MediaTooLargeError`, a 404 / 410 :class:`~vecsim.errors.MediaNotFoundError`,
anything else (time-outs, too many redirects, network and HTTP errors)
:class:`~vecsim.errors.MediaFetchError`; each names the URL it was given. See
``docs/url-fetching.md``.
"""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import math
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import InvalidRequestError, MediaFetchError, MediaNotFoundError, MediaTooLargeError, UrlNotAllowedError

#: Largest download, in bytes.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: How long to wait for the server on each connect / read ...
URL_TIMEOUT_S = 30.0
#: ... and for the whole download: a server that trickles bytes cannot hold an add forever.
URL_DEADLINE_S = 120.0
#: Redirects followed before giving up.
DEFAULT_MAX_REDIRECTS = 5
#: The only schemes vecsim ever fetches.
SCHEMES = ("http", "https")
#: The redirect statuses followed (each new location is checked like the first URL).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Bytes asked for per read of a body.
CHUNK = 1 << 20

_DEFAULT_PORTS = {"http": 80, "https": 443}
_USER_AGENT = "vecsim"
#: NAT64's well-known prefix (RFC 6052): the address is judged by the IPv4 address it embeds.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)


@dataclass(frozen=True)
class UrlPolicy:
    """What a URL fetch may reach and how long and how much it may take.

    - ``block_private``: refuse a host that resolves to an address that is not public:
      loopback, private (RFC 1918, ``fc00::/7``), link-local (``169.254.0.0/16`` with the cloud
      metadata address ``169.254.169.254``, ``fe80::/10``), multicast, reserved, unspecified
      (``0.0.0.0``, ``::``), shared / carrier-grade NAT (``100.64.0.0/10``), site-local
      (``fec0::/10``), the IPv4-mapped, 6to4, Teredo and NAT64 forms of these, and anything else
      :mod:`ipaddress` says is not global;
    - ``allow``: CIDR ranges (``"10.1.0.0/16"``, ``"fd00:1::/64"``, or one address) accepted even
      when ``block_private`` would refuse them, checked first;
    - ``max_redirects``: redirects followed (each one checked like the first URL);
    - ``max_bytes``: largest body, counted while it streams;
    - ``connect_timeout``: seconds per connection attempt (TCP and TLS handshake);
    - ``read_timeout``: seconds per socket read or write (a server that goes silent);
    - ``deadline``: seconds for the whole fetch, redirects included (a server that trickles);
    - ``schemes``: a subset of ``("http", "https")``.

    :meth:`permissive` (the library default) checks no address; :meth:`strict` (for a service
    that fetches URLs its users name) blocks every non-public address. A bad value raises
    :class:`~vecsim.errors.InvalidRequestError` naming the field; ``policy.replace(...)`` gives
    a checked copy.
    """

    block_private: bool = False
    allow: tuple[str, ...] = ()
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    max_bytes: int = DEFAULT_MAX_BYTES
    connect_timeout: float = URL_TIMEOUT_S
    read_timeout: float = URL_TIMEOUT_S
    deadline: float = URL_DEADLINE_S
    schemes: tuple[str, ...] = SCHEMES
    _networks: tuple[Any, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        if not isinstance(self.block_private, bool):
            raise InvalidRequestError(f"block_private must be True or False, got {self.block_private!r}")
        allow = (self.allow,) if isinstance(self.allow, str) else self.allow
        try:
            allow = tuple(allow)
        except TypeError:
            raise InvalidRequestError(f"allow must be a tuple of CIDR ranges, got {self.allow!r}") from None
        networks = []
        for item in allow:
            try:
                networks.append(ipaddress.ip_network(item.strip() if isinstance(item, str) else item))
            except (TypeError, ValueError) as exc:
                raise InvalidRequestError(f"allow: {item!r} is not a CIDR range ({exc})") from None
        schemes = (self.schemes,) if isinstance(self.schemes, str) else tuple(self.schemes)
        schemes = tuple(s.lower() if isinstance(s, str) else s for s in schemes)
        if not schemes or any(s not in SCHEMES for s in schemes):
            raise InvalidRequestError(f"schemes must be some of {SCHEMES}, got {self.schemes!r}")
        max_redirects = _integer("max_redirects", self.max_redirects, 0)
        max_bytes = _integer("max_bytes", self.max_bytes, 1)
        object.__setattr__(self, "allow", tuple(str(n) for n in networks))
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "schemes", schemes)
        object.__setattr__(self, "max_redirects", max_redirects)
        object.__setattr__(self, "max_bytes", max_bytes)
        for name in ("connect_timeout", "read_timeout", "deadline"):
            object.__setattr__(self, name, _seconds(name, getattr(self, name)))

    @classmethod
    def permissive(cls, **changes: Any) -> UrlPolicy:
        """The library default: any address (a library user fetches what they ask for), with
        every other limit (schemes, redirects, bytes, time-outs, deadline)."""
        return cls(block_private=False, **changes)

    @classmethod
    def strict(cls, allow: tuple[str, ...] | list[str] | str = (), **changes: Any) -> UrlPolicy:
        """For a service that fetches URLs its users name: only public addresses, plus the ranges
        in ``allow``; the other limits as :meth:`permissive` unless ``changes`` say otherwise."""
        return cls(block_private=True, allow=allow, **changes)

    def replace(self, **changes: Any) -> UrlPolicy:
        """A checked copy with ``changes`` applied."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self) if f.init}
        if unknown:
            raise InvalidRequestError(f"unknown URL policy field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes) if changes else self

    def address_refusal(self, address: str) -> str | None:
        """Why this policy refuses to connect to ``address`` (``"a loopback address"``, ...), or
        None when it may. Addresses in ``allow`` are accepted first; nothing is refused unless
        ``block_private``."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "an address that is not IPv4 or IPv6" if self.block_private else None
        if any(ip in net or (_unmapped(ip) is not ip and _unmapped(ip) in net) for net in self._networks):
            return None
        if not self.block_private:
            return None
        return _non_public(ip)


def _unmapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """``::ffff:a.b.c.d`` as ``a.b.c.d``; any other address as itself."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def _non_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of non-public address ``ip`` is, or None for a public one."""
    ip = _unmapped(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = []
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        for inner in embedded:
            kind = _non_public(inner)
            if kind:
                return kind
        if ip in _NAT64:  # judged by the IPv4 address it carries, which is public
            return None
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared (carrier-grade NAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED),
        ("site-local", getattr(ip, "is_site_local", False)),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    )
    for kind, hit in checks:
        if hit:
            return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
    return None


def _integer(name: str, value: Any, least: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidRequestError(f"{name} must be an integer of at least {least}, got {value!r}")
    return int(value)


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not value > 0:
        raise InvalidRequestError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


# --- one hop: parse, resolve and check, connect pinned ------------------------------------------


class _Target(NamedTuple):
    url: str
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    path: str  # path and query, as sent in the request line
    host_header: str


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for messages and logs)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _parse(url: str, policy: UrlPolicy, source: str, hop: str) -> _Target:
    """Check the URL's form and scheme; ``hop`` prefixes reasons ("" or "redirected to ...: ")."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowedError(source, f"{hop}not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        if hop:
            raise UrlNotAllowedError(source, f"redirected to {redact(url)!r}, which is not an http(s) URL: refused")
        raise UrlNotAllowedError(source, f"not an http(s) URL (scheme {scheme or 'missing'!r}): refused")
    if scheme not in policy.schemes:
        raise UrlNotAllowedError(source, f"{hop}the URL policy does not allow {scheme} URLs "
                                         f"(only {', '.join(policy.schemes)})")
    if "@" in parts.netloc:
        raise UrlNotAllowedError(source, f"{hop}credentials in the URL (user:password@) are not accepted")
    host = parts.hostname or ""
    if not host:
        raise UrlNotAllowedError(source, f"{hop}the URL has no host")
    if ":" not in host:  # a name or an IPv4 literal: to ASCII (IDNA)
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UrlNotAllowedError(source, f"{hop}{host!r} is not a valid host name") from None
    if port == 0:
        raise UrlNotAllowedError(source, f"{hop}port 0 is not a port to fetch from")
    port = port or _DEFAULT_PORTS[scheme]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in path):
        raise UrlNotAllowedError(source, f"{hop}the URL's path contains spaces or control characters")
    name = f"[{host}]" if ":" in host else host
    host_header = name if port == _DEFAULT_PORTS[scheme] else f"{name}:{port}"
    return _Target(url, scheme, host, port, path, host_header)


def _resolve(target: _Target, policy: UrlPolicy, source: str, hop: str) -> list[tuple]:
    """The host's addresses, ``(family, sockaddr)``, every one checked against the policy.

    One refused address refuses the URL (a name that answers both a public and a private
    address is not trusted with either). Messages name the kind of address, never the address."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise MediaFetchError(source, f"{hop}cannot resolve host {target.host!r} "
                                      f"({getattr(exc, 'strerror', None) or exc})") from None
    found: list[tuple] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        kind = policy.address_refusal(str(sockaddr[0]))
        if kind:
            raise UrlNotAllowedError(source, f"{hop}{_names(target.host)} {kind}: refused by the URL policy"
                                             + (" (not in its allow list)" if policy.allow else ""))
        if (family, sockaddr) not in found:
            found.append((family, sockaddr))
    if not found:
        raise MediaFetchError(source, f"{hop}cannot resolve host {target.host!r} (no IPv4 or IPv6 address)")
    return found


def _names(host: str) -> str:
    """``host 'example.com' resolves to`` or ``'10.0.0.5' is`` (an IP literal is already in the URL)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return f"host {host!r} resolves to"
    return f"{host!r} is"


class _Budget:
    """The fetch's deadline, and the time-out for each socket operation under it."""

    def __init__(self, policy: UrlPolicy, total: float | None = None):
        self.policy = policy
        self.total = policy.deadline if total is None else total
        self.end = time.monotonic() + self.total

    def left(self) -> float:
        return self.end - time.monotonic()

    def timeout(self, per_operation: float) -> float:
        left = self.left()
        if left <= 0:
            raise _DeadlineExceeded()
        return min(per_operation, left)


class _DeadlineExceeded(TimeoutError):
    """The whole-fetch deadline passed (told apart from a per-read time-out)."""


class _TimedReads:
    """Each read waits at most the read time-out, and never past the deadline: this covers the
    status line and headers (read by :mod:`http.client`) as well as the body."""

    _budget: _Budget | None = None

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        if self._budget is not None:
            self.settimeout(self._budget.timeout(self._budget.policy.read_timeout))
        return super().recv_into(*args, **kwargs)  # type: ignore[misc]


class _TimedSocket(_TimedReads, socket.socket):
    pass


class _TimedSSLSocket(_TimedReads, ssl.SSLSocket):
    pass


def _tls_context() -> ssl.SSLContext:
    """Certificates verified against the system's CAs (or ``SSL_CERT_FILE``), host name checked."""
    context = ssl.create_default_context()
    context.sslsocket_class = _TimedSSLSocket
    return context


def _connect(target: _Target, addresses: list[tuple], policy: UrlPolicy, budget: _Budget, source: str,
             hop: str) -> socket.socket:
    """A connection to one of the checked ``addresses`` (never to the name), TLS for https."""
    errors = []
    for family, sockaddr in addresses:
        sock = _TimedSocket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(budget.timeout(policy.connect_timeout))
            sock.connect(sockaddr)
            kind = policy.address_refusal(str(sock.getpeername()[0]))  # defence in depth
            if kind:
                raise UrlNotAllowedError(source, f"{hop}the connection reached {kind}: refused by the URL policy")
            if target.scheme == "https":
                tls = _tls_context().wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
                sock = tls
                tls.settimeout(budget.timeout(policy.connect_timeout))
                tls.do_handshake()
            sock._budget = budget  # type: ignore[attr-defined]
            return sock
        except (UrlNotAllowedError, _DeadlineExceeded, ssl.SSLError, ssl.CertificateError):
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            if budget.left() <= 0:
                raise _DeadlineExceeded() from None
            errors.append(exc)
    exc = errors[-1]
    if isinstance(exc, TimeoutError):
        raise MediaFetchError(source, f"{hop}cannot connect within {policy.connect_timeout:g} s") from None
    raise MediaFetchError(source, f"{hop}cannot connect: {exc.strerror or exc}") from None


def _exchange(target: _Target, method: str, body: bytes | None, headers: Mapping[str, str],
              policy: UrlPolicy, budget: _Budget, source: str, hop: str) -> http.client.HTTPResponse:
    """Send one request over a checked, pinned connection; the response with its headers read."""
    addresses = _resolve(target, policy, source, hop)
    sock = _connect(target, addresses, policy, budget, source, hop)
    conn = http.client.HTTPConnection(target.host, target.port)
    conn.sock = sock  # pinned: http.client never connects (nor resolves) by itself
    try:
        wanted = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
        wanted.setdefault("User-Agent", _USER_AGENT)
        wanted.setdefault("Accept-Encoding", "identity")  # bytes counted are bytes stored
        sock.settimeout(budget.timeout(policy.read_timeout))
        conn.request(method, target.path, body=body,
                     headers={"Host": target.host_header, **wanted, "Connection": "close"})
        resp = conn.getresponse()
    except BaseException:
        conn.close()
        raise
    conn.sock = None  # the response owns the connection now: closing it closes the socket
    sock.close()
    return resp


# --- the public calls ---------------------------------------------------------------------------


def check_url(url: str, policy: UrlPolicy) -> None:
    """Check ``url`` against ``policy`` without connecting: its scheme, no credentials, and every
    address its host resolves to now. Raises :class:`~vecsim.errors.UrlNotAllowedError` (or
    :class:`~vecsim.errors.MediaFetchError` when the host does not resolve).

    The answer holds for now only (DNS may change): to send to the URL later, use
    :func:`post_url` or :func:`open_url`, which check again and connect to the checked address."""
    source = redact(url)
    _resolve(_parse(url, policy, source, ""), policy, source, "")


class UrlResponse:
    """A 2xx response of :func:`open_url`: ``url`` (after redirects), ``status``, ``headers``,
    ``content_type``, ``content_length`` (None when absent or not a number), ``redirects``;
    iterate :meth:`chunks` for the body."""

    def __init__(self, source: str, url: str, resp: http.client.HTTPResponse, redirects: int,
                 policy: UrlPolicy, budget: _Budget):
        self.source, self.url, self.redirects = source, url, redirects
        self.status, self.reason, self.headers = resp.status, resp.reason, resp.headers
        self.content_type = (resp.headers.get_content_type() or "").lower()
        self.content_length = _content_length(resp.headers.get("Content-Length"))
        self.received = 0
        self._resp, self._policy, self._budget = resp, policy, budget

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The body, as it arrives: at most ``max_bytes`` (else
        :class:`~vecsim.errors.MediaTooLargeError`), within the read time-out per read and the
        deadline overall (else :class:`~vecsim.errors.MediaFetchError`). A body shorter than its
        ``Content-Length`` is a MediaFetchError; bytes past it are not part of the response."""
        limit = self._policy.max_bytes
        with _as_media_errors(self.source, self._policy, self._budget, self):
            while True:
                chunk = self._resp.read1(size)
                if not chunk:
                    break
                self.received += len(chunk)
                if self.received > limit:
                    raise MediaTooLargeError(self.source, f"more than the download limit of {limit:,} bytes")
                yield chunk
            if self.content_length is not None and self.received < self.content_length:
                raise MediaFetchError(self.source, f"the connection closed after {self.received:,} of "
                                                   f"{self.content_length:,} bytes")

    def close(self) -> None:
        self._resp.close()


@contextmanager
def open_url(url: str, policy: UrlPolicy, *, headers: Mapping[str, str] | None = None) -> Iterator[UrlResponse]:
    """GET ``url`` under ``policy``, following up to ``max_redirects`` redirects (each hop checked
    like the first), and yield the 2xx :class:`UrlResponse` (closed on exit). A ``Content-Length``
    over ``max_bytes`` is refused before any body is read. Errors name ``url`` (credentials
    redacted): :class:`~vecsim.errors.UrlNotAllowedError`, :class:`~vecsim.errors.MediaTooLargeError`,
    :class:`~vecsim.errors.MediaNotFoundError` (404 / 410), :class:`~vecsim.errors.MediaFetchError`."""
    source = redact(url)
    budget = _Budget(policy)
    current, hop, redirects = url, "", 0
    resp = None
    try:
        with _as_media_errors(source, policy, budget, None):
            while True:
                target = _parse(current, policy, source, hop)
                resp = _exchange(target, "GET", None, headers or {}, policy, budget, source, hop)
                if resp.status not in REDIRECT_STATUSES:
                    break
                location = (resp.getheader("Location") or "").strip()
                resp.close()
                resp = None
                if not location:
                    raise MediaFetchError(source, f"{hop}HTTP redirect without a Location")
                if redirects >= policy.max_redirects:
                    raise MediaFetchError(source, f"too many redirects (more than {policy.max_redirects})")
                redirects += 1
                current = urllib.parse.urljoin(current, location)
                hop = f"redirected to {redact(current)!r}: "
            if not 200 <= resp.status < 300:
                error = MediaNotFoundError if resp.status in (404, 410) else MediaFetchError
                raise error(source, f"{hop}HTTP {resp.status} {_printable(resp.reason)}".rstrip())
            response = UrlResponse(source, current, resp, redirects, policy, budget)
            if response.content_length is not None and response.content_length > policy.max_bytes:
                raise MediaTooLargeError(source, f"{response.content_length:,} bytes is over the download "
                                                 f"limit of {policy.max_bytes:,}")
        yield response
    finally:
        if resp is not None:
            resp.close()


def post_url(url: str, body: bytes, *, policy: UrlPolicy, headers: Mapping[str, str] | None = None,
             timeout: float | None = None) -> int:
    """POST ``body`` to ``url`` (a webhook) over a checked, pinned connection and return the HTTP
    status. Redirects are not followed (a 3xx status is returned as it is). ``timeout`` bounds
    the whole exchange (default: the policy's ``deadline``); the response body is not read.
    Raises :class:`~vecsim.errors.UrlNotAllowedError` or :class:`~vecsim.errors.MediaFetchError`."""
    source = redact(url)
    budget = _Budget(policy, _seconds("timeout", timeout) if timeout is not None else None)
    with _as_media_errors(source, policy, budget, None):
        target = _parse(url, policy, source, "")
        resp = _exchange(target, "POST", bytes(body), headers or {}, policy, budget, source, "")
        resp.close()
        return resp.status


@contextmanager
def _as_media_errors(source: str, policy: UrlPolicy, budget: _Budget, response: UrlResponse | None):
    """Turn what the network raises into vecsim's errors, naming ``source``."""
    try:
        yield
    except (MediaFetchError, MediaTooLargeError, MediaNotFoundError):
        raise
    except (TimeoutError, socket.timeout) as exc:
        got = f" ({response.received:,} bytes received)" if response is not None else ""
        if isinstance(exc, _DeadlineExceeded) or budget.left() <= 0:
            raise MediaFetchError(source, f"download not finished within {budget.total:g} s{got}") from None
        raise MediaFetchError(source, f"no answer within {policy.read_timeout:g} s (read time-out){got}") from None
    except http.client.IncompleteRead as exc:
        raise MediaFetchError(source, f"the connection closed early ({len(exc.partial):,} bytes received, "
                                      f"{exc.expected or 0:,} more expected)") from None
    except ssl.CertificateError as exc:
        raise MediaFetchError(source, f"TLS certificate not accepted: {exc.verify_message or exc}") from None
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise MediaFetchError(source, f"cannot fetch: {exc.__class__.__name__}: {_printable(str(exc))}") from None


def _content_length(value: str | None) -> int | None:
    """The ``Content-Length`` header as a number, or None when absent or not a number."""
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _printable(text: str, limit: int = 120) -> str:
    """Server-sent text for a message: printable, and short."""
    text = "".join(c if c.isprintable() else "?" for c in (text or ""))
    return text if len(text) <= limit else text[: limit - 3] + "..."
