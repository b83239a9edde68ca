"""The URL policy: SSRF-safe fetching. Every server here is a real one on the loopback interface
(127.0.0.1 / 127.0.0.2, free ports, stopped in teardown); names that are not local are made up and
resolved by a patched ``socket.getaddrinfo``. Nothing leaves the machine."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from vecsim.errors import (
    InvalidRequestError,
    MediaFetchError,
    MediaTooLargeError,
    UrlNotAllowedError,
)
from vecsim.media import MediaOptions, open_media
from vecsim.media import fetch
from vecsim.media.fetch import UrlPolicy, check_url, open_url, post_url
from vecsim.media.inputs import download

BODY = b"0123456789" * 10
MB = 1 << 20


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers per path; every request is recorded in ``self.server.hits``."""

    def log_message(self, *args):
        pass

    def _record(self, body: bytes = b""):
        self.server.hits.append((self.command, self.path, self.headers.get("Host"), body))

    def _head(self, status=200, length=None, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        if self.path == "/moved":
            self._head(302, 0, [("Location", "/hook")])
        else:
            self._head(204)

    def do_GET(self):
        self._record()
        path, _, query = self.path.partition("?")
        try:
            if path == "/ok":
                self._head(200, len(BODY))
                self.wfile.write(BODY)
            elif path == "/host":  # the Host header it was sent
                host = (self.headers.get("Host") or "").encode()
                self._head(200, len(host))
                self.wfile.write(host)
            elif path == "/redirect":  # /redirect?to=URL
                self._head(302, 0, [("Location", urllib.parse.parse_qs(query)["to"][0])])
            elif path == "/loop":
                self._head(302, 0, [("Location", "/loop")])
            elif path == "/endless":  # no Content-Length, never ends (for at most 10 s)
                self._head(200)
                end = time.monotonic() + 10
                while time.monotonic() < end:
                    self.wfile.write(b"\0" * 65536)
            elif path == "/liar-chunked":  # says 10 bytes, sends 10 MB chunked
                self._head(200, 10, [("Transfer-Encoding", "chunked")])
                for _ in range(160):
                    self.wfile.write(b"10000\r\n" + b"\0" * 65536 + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/liar-plain":  # says 10 bytes, sends 10 MB
                self._head(200, 10)
                for _ in range(160):
                    self.wfile.write(b"\0" * 65536)
            elif path == "/huge":  # declares 1 GB
                self._head(200, 10**9)
                self.wfile.write(b"\0" * 1024)
            elif path == "/slow":  # one byte every 0.5 s, for at most 10 s
                self._head(200)
                for _ in range(20):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.5)
            else:
                self._head(404, 0)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.httpd = http.server.ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.hits = []
        self.host, self.port = host, self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def hits(self) -> list:
        return self.httpd.hits

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    started: list[_Server] = []

    def start(host: str = "127.0.0.1", port: int = 0) -> _Server:
        started.append(_Server(host, port))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def server(servers):
    return servers()


@pytest.fixture
def resolver(monkeypatch):
    """Make-believe DNS: ``resolver["name.test"] = ["10.0.0.5", ...]``; other names resolve as
    usual. ``resolver.calls`` lists every name looked up."""
    real = socket.getaddrinfo

    class Resolver(dict):
        calls: list[str] = []

        def __call__(self, host, port, *args, **kwargs):
            self.calls.append(host)
            if host in self:
                answer = self[host]
                addresses = answer.pop(0) if answer and isinstance(answer[0], list) else answer
                return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                         (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]
            return real(host, port, *args, **kwargs)

    fake = Resolver()
    fake.calls = []
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def no_connect(monkeypatch):
    """Fail the test if any connection is attempted."""
    attempts = []

    def connect(self, address):
        attempts.append(address)
        raise AssertionError(f"connection attempted to {address}")

    monkeypatch.setattr(fetch._TimedSocket, "connect", connect)
    return attempts


def _get(url: str, policy: UrlPolicy) -> bytes:
    with open_url(url, policy) as resp:
        return b"".join(resp.chunks())


STRICT = UrlPolicy.strict()
LOCAL = UrlPolicy.strict(allow=("127.0.0.0/8",))


# --- the policy object -------------------------------------------------------------------------


def test_policy_defaults_and_constructors():
    p = UrlPolicy.permissive()
    assert p == UrlPolicy() and not p.block_private and p.allow == ()
    assert (p.max_redirects, p.max_bytes, p.connect_timeout, p.read_timeout, p.deadline, p.schemes) == (
        5, 2 * 1024**3, 30.0, 30.0, 120.0, ("http", "https"))
    s = UrlPolicy.strict(allow="10.1.0.0/16", max_bytes=10)
    assert s.block_private and s.allow == ("10.1.0.0/16",) and s.max_bytes == 10
    assert s == UrlPolicy.strict(allow=["10.1.0.0/16"], max_bytes=10) and hash(s) == hash(
        UrlPolicy.strict(allow=("10.1.0.0/16",), max_bytes=10))
    assert s.replace(deadline=3).deadline == 3.0 and MediaOptions().url_policy == UrlPolicy.permissive()


@pytest.mark.parametrize("field, bad", [
    ("allow", ("10.0.0.0/33",)), ("allow", ("10.0.0.1/8",)), ("allow", ("intranet",)), ("schemes", ("ftp",)),
    ("schemes", ()), ("max_redirects", -1), ("max_bytes", 0), ("connect_timeout", 0), ("read_timeout", -1.0),
    ("deadline", float("nan")), ("block_private", "yes"),
])
def test_policy_refuses_bad_values_naming_the_field(field, bad):
    with pytest.raises(InvalidRequestError, match=field):
        UrlPolicy(**{field: bad})


def test_media_options_carry_a_policy():
    with pytest.raises(InvalidRequestError, match="url_policy"):
        MediaOptions(url_policy="strict")
    with pytest.raises(InvalidRequestError, match="unknown URL policy"):
        STRICT.replace(block=True)
    assert MediaOptions().replace(url_policy=STRICT).url_policy is STRICT


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.5", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("169.254.169.254", "link-local"),
    ("fe80::1%eth0", "link-local"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("100.64.1.1", "carrier-grade NAT"),
    ("240.0.0.1", "private"), ("fec0::1", "site-local"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"), ("2002:a00:5::1", "private"), ("64:ff9b::7f00:1", "loopback"),
    ("192.0.2.1", "private"), ("198.18.0.1", "private"),
])
def test_non_public_addresses_are_refused(address, kind):
    assert kind in STRICT.address_refusal(address)
    assert UrlPolicy.permissive().address_refusal(address) is None


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "64:ff9b::808:808",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert STRICT.address_refusal(address) is None


def test_allow_is_checked_first_in_either_notation():
    p = UrlPolicy.strict(allow=("10.1.0.0/16", "fd00:1::/64"))
    assert p.address_refusal("10.1.2.3") is None and p.address_refusal("::ffff:10.1.2.3") is None
    assert p.address_refusal("fd00:1::5") is None
    assert "private" in p.address_refusal("10.2.0.1")


# --- refusals before any request ---------------------------------------------------------------


def test_strict_refuses_loopback_and_no_request_reaches_the_server(server):
    with pytest.raises(UrlNotAllowedError, match="loopback") as err:
        _get(f"{server.url}/ok", STRICT)
    assert err.value.code == "url_not_allowed" and err.value.source == f"{server.url}/ok"
    assert isinstance(err.value, MediaFetchError)  # callers catching MediaFetchError still do
    with pytest.raises(UrlNotAllowedError, match="host 'localhost' resolves to a loopback address") as err:
        _get(f"http://localhost:{server.port}/ok", STRICT)
    assert "127.0.0.1" not in str(err.value)  # the kind of address, not the address
    assert server.hits == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]",
                                  "0.0.0.0", "0"])
def test_other_spellings_of_loopback_are_refused(server, host):
    with pytest.raises(UrlNotAllowedError):
        _get(f"http://{host}:{server.port}/ok", STRICT)
    assert server.hits == []


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.5", "::1", "::ffff:127.0.0.1", "0.0.0.0",
                                     "100.64.0.1", "fd12::1"])
def test_a_name_resolving_to_a_non_public_address_is_refused(resolver, no_connect, address):
    resolver["media.example.test"] = [address]
    with pytest.raises(UrlNotAllowedError, match="host 'media.example.test' resolves to an? .* address") as err:
        _get("http://media.example.test/a.jpg", STRICT)
    assert address not in str(err.value) and no_connect == []
    with pytest.raises(UrlNotAllowedError):
        check_url("http://media.example.test/a.jpg", STRICT)


def test_one_private_answer_among_public_ones_refuses_the_name(resolver, no_connect):
    resolver["mixed.test"] = ["93.184.216.34", "10.0.0.5"]
    with pytest.raises(UrlNotAllowedError, match="private"):
        check_url("http://mixed.test/", STRICT)
    resolver["public.test"] = ["93.184.216.34", "2606:4700::1111"]
    check_url("https://public.test:8443/x.jpg", STRICT)  # other ports are allowed
    check_url("http://10.0.0.5/", UrlPolicy.permissive())


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.jpg", "gopher://127.0.0.1:70/_x",
                                 "data:image/png;base64,AAAA", "dict://127.0.0.1:11211/", "/etc/passwd",
                                 "http:///nohost", "http://[::1/"])
@pytest.mark.parametrize("policy", [STRICT, UrlPolicy.permissive()], ids=["strict", "permissive"])
def test_other_schemes_and_malformed_urls_are_refused(no_connect, url, policy):
    with pytest.raises(UrlNotAllowedError):
        _get(url, policy)
    with pytest.raises(UrlNotAllowedError):
        check_url(url, policy)


def test_a_policy_may_allow_https_only(server):
    with pytest.raises(UrlNotAllowedError, match="does not allow http URLs"):
        _get(f"{server.url}/ok", UrlPolicy.permissive(schemes=("https",)))
    assert server.hits == []


def test_credentials_in_the_url_are_refused_and_not_repeated(server):
    url = f"http://user:s3cret@127.0.0.1:{server.port}/ok"
    for policy in (LOCAL, UrlPolicy.permissive()):
        with pytest.raises(UrlNotAllowedError, match="credentials") as err:
            _get(url, policy)
        assert "s3cret" not in str(err.value) and err.value.source == f"http://***@127.0.0.1:{server.port}/ok"
    assert server.hits == []


# --- allowed ranges, redirects -----------------------------------------------------------------


def test_allowed_range_reaches_the_local_server(server):
    assert _get(f"{server.url}/ok", LOCAL) == BODY
    assert _get(f"{server.url}/ok", UrlPolicy.permissive()) == BODY  # the library default, as before
    path = download(f"{server.url}/ok", policy=LOCAL)
    try:
        assert Path(path).read_bytes() == BODY
    finally:
        os.unlink(path)
    with pytest.raises(MediaTooLargeError):
        download(f"{server.url}/ok", max_bytes=10)  # the old keyword still works
    assert len(server.hits) == 4


def test_media_options_policy_reaches_open_media(server):
    with pytest.raises(UrlNotAllowedError):
        open_media(f"{server.url}/ok", MediaOptions(url_policy=STRICT))
    with pytest.raises(UrlNotAllowedError):
        open_media(f"{server.url}/ok", url_policy=STRICT)
    assert server.hits == []


def test_redirect_to_a_loopback_address_outside_the_allowed_range_is_refused(servers):
    inner = servers("127.0.0.1")
    outer = servers("127.0.0.2")
    policy = UrlPolicy.strict(allow=("127.0.0.2/32",))
    assert _get(f"{outer.url}/ok", policy) == BODY
    with pytest.raises(UrlNotAllowedError, match="redirected to .* loopback") as err:
        _get(f"{outer.url}/redirect?to={inner.url}/ok", policy)
    assert err.value.source == f"{outer.url}/redirect?to={inner.url}/ok"
    assert inner.hits == [] and len(outer.hits) == 2


def test_redirect_to_cloud_metadata_is_refused_without_connecting(server, monkeypatch):
    connected = []
    real = fetch._TimedSocket.connect

    def connect(self, address):
        connected.append(address[0])
        return real(self, address)

    monkeypatch.setattr(fetch._TimedSocket, "connect", connect)
    start = time.monotonic()
    with pytest.raises(UrlNotAllowedError, match="link-local"):
        _get(f"{server.url}/redirect?to=http://169.254.169.254/latest/meta-data/", LOCAL)
    assert time.monotonic() - start < 2 and connected == ["127.0.0.1"]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/x",
                                    "data:,x"])
def test_redirect_to_another_scheme_is_refused(server, target):
    with pytest.raises(UrlNotAllowedError, match="not an http\\(s\\) URL"):
        _get(f"{server.url}/redirect?to={urllib.parse.quote(target)}", UrlPolicy.permissive())


def test_redirect_loop_is_cut(server):
    with pytest.raises(MediaFetchError, match="too many redirects \\(more than 5\\)") as err:
        _get(f"{server.url}/loop", LOCAL)
    assert not isinstance(err.value, UrlNotAllowedError) and len(server.hits) == 6
    with pytest.raises(MediaFetchError, match="more than 0"):
        _get(f"{server.url}/loop", LOCAL.replace(max_redirects=0))


def test_the_connection_is_pinned_to_the_checked_address(servers, resolver):
    """DNS rebinding: the name answers an allowed address to the check and a refused one after;
    the request still goes to the checked address (nothing resolves the name twice), with the
    original Host header."""
    outer = servers("127.0.0.2")
    try:
        inner = servers("127.0.0.1", outer.port)
    except OSError:
        pytest.skip("the port is taken on 127.0.0.1")
    resolver["rebind.test"] = [["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]]
    policy = UrlPolicy.strict(allow=("127.0.0.2/32",))
    assert _get(f"http://rebind.test:{outer.port}/host", policy) == f"rebind.test:{outer.port}".encode()
    assert resolver.calls.count("rebind.test") == 1 and inner.hits == []


def test_the_peer_is_checked_again_after_connecting(server, monkeypatch):
    monkeypatch.setattr(fetch._TimedSocket, "getpeername", lambda self: ("10.0.0.5", 80))
    with pytest.raises(UrlNotAllowedError, match="connection reached a private address"):
        _get(f"{server.url}/ok", LOCAL)
    assert server.hits == []


# --- size, time --------------------------------------------------------------------------------


def test_endless_body_is_cut_at_max_bytes(server):
    start = time.monotonic()
    with pytest.raises(MediaTooLargeError, match="1,048,576"):
        _get(f"{server.url}/endless", LOCAL.replace(max_bytes=MB))
    assert time.monotonic() - start < 5


def test_content_length_over_the_limit_is_refused_before_reading(server):
    with pytest.raises(MediaTooLargeError, match="1,000,000,000 bytes is over"):
        with open_url(f"{server.url}/huge", LOCAL.replace(max_bytes=MB)):
            pytest.fail("the response should not be handed over")


def test_lying_content_length_is_bounded_by_the_count(server):
    with pytest.raises(MediaTooLargeError):
        _get(f"{server.url}/liar-chunked", LOCAL.replace(max_bytes=MB))
    start = time.monotonic()
    assert _get(f"{server.url}/liar-plain", LOCAL.replace(max_bytes=MB)) == b"\0" * 10  # the rest is not read
    assert time.monotonic() - start < 5


def test_slow_body_is_cut_at_the_deadline(server):
    start = time.monotonic()
    with pytest.raises(MediaFetchError, match="not finished within 2 s"):
        _get(f"{server.url}/slow", LOCAL.replace(deadline=2))
    assert 1.9 < time.monotonic() - start < 3.5


def test_silent_server_hits_the_read_timeout():
    """A server that accepts (the kernel completes the handshake) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        start = time.monotonic()
        with pytest.raises(MediaFetchError, match="read time-out"):
            _get(f"http://127.0.0.1:{listener.getsockname()[1]}/x", LOCAL.replace(read_timeout=0.5))
        assert time.monotonic() - start < 2


def test_unreachable_server_hits_the_connect_timeout():
    """A listener whose backlog is full: Linux drops the SYN, the connect hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = []
        for _ in range(3):
            s = socket.socket()
            s.settimeout(0.2)
            try:
                s.connect(address)
            except OSError:
                pass
            fillers.append(s)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(address)
            pytest.skip("this kernel accepts connections past a full backlog")
        except TimeoutError:
            pass
        finally:
            probe.close()
        try:
            start = time.monotonic()
            with pytest.raises(MediaFetchError, match="cannot connect within 0.5 s"):
                _get(f"http://127.0.0.1:{address[1]}/x", LOCAL.replace(connect_timeout=0.5))
            assert time.monotonic() - start < 2
        finally:
            for s in fillers:
                s.close()


# --- webhooks ----------------------------------------------------------------------------------


def test_post_url_is_checked_and_pinned(server):
    with pytest.raises(UrlNotAllowedError, match="loopback"):
        post_url(f"{server.url}/hook", b'{"a": 1}', policy=STRICT)
    assert server.hits == []
    status = post_url(f"{server.url}/hook", b'{"a": 1}', policy=LOCAL,
                      headers={"Content-Type": "application/json", "Host": "evil.test"}, timeout=5)
    assert status == 204
    assert server.hits == [("POST", "/hook", f"127.0.0.1:{server.port}", b'{"a": 1}')]
    assert post_url(f"{server.url}/moved", b"x", policy=LOCAL) == 302  # redirects are not followed
    assert len(server.hits) == 2


def test_post_url_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        start = time.monotonic()
        with pytest.raises(MediaFetchError, match="within 0.5 s"):
            post_url(f"http://127.0.0.1:{listener.getsockname()[1]}/hook", b"x", policy=LOCAL, timeout=0.5)
        assert time.monotonic() - start < 2


# --- https: SNI and the certificate checked against the original name ---------------------------


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=media.test",
                    "-addext", "subjectAltName=DNS:media.test"], check=True, capture_output=True, timeout=30)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the only CA the client trusts
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads, httpd.block_on_close, httpd.hits = True, False, []
    names: list = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield httpd.server_address[1], names
    httpd.shutdown()
    httpd.server_close()


def test_https_sends_sni_and_checks_the_certificate_for_the_original_name(tls_server, resolver):
    port, names = tls_server
    resolver["media.test"] = ["127.0.0.1"]
    resolver["other.test"] = ["127.0.0.1"]
    assert _get(f"https://media.test:{port}/host", LOCAL) == f"media.test:{port}".encode()
    assert names == ["media.test"]
    with pytest.raises(MediaFetchError, match="certificate"):
        _get(f"https://other.test:{port}/host", LOCAL)  # same address, a name the certificate lacks
    with pytest.raises(UrlNotAllowedError):
        _get(f"https://media.test:{port}/host", STRICT)
