"""Real gateways for the tests: a TLS JWKS server, Apache httpd + mod_auth_openidc, node `jose`.

Nothing here is a mock. `JwksServer` is a small threaded HTTPS server on loopback whose served
JWK Set the test sets at any moment; `ApacheGateway` runs the Debian `apache2` binary as a user
process with mod_auth_openidc as an OAuth 2.0 resource server that fetches that JWK Set;
`JoseConsumer` runs panva/jose (`createRemoteJWKSet` + `jwtVerify`) in a node process against the
same server (it verifies EdDSA, which mod_auth_openidc's cjose cannot).

Facts about mod_auth_openidc 2.4.12.3 (Debian bookworm) that the tests rely on, read in its
source at tag v2.4.12.3 (see docs/gateways.md):
* the fetched JWK Set is cached (shm cache by default) for `OIDCJWKSRefreshInterval` seconds
  (default 3600, minimum 300: it cannot be made shorter);
* a token whose `kid` is not in the cached set forces one re-fetch at once (no rate limit in
  2.4.12), and if that fetch fails the cached set is used;
* a token whose `kid` *is* cached never causes a fetch: a removed key stays trusted until the
  cache entry expires, or until the server restarts (`ApacheGateway.restart` empties the cache);
* for `AuthType oauth20` only `exp` is checked (and only if present); `iss`, `aud` and `nbf` are
  not: `Require claim iss:…` / `Require claim aud:…` do it (a failed claim gives 401).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import http.client
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"

APACHE_BIN_CANDIDATES = ("/usr/sbin/apache2", "/usr/sbin/httpd")
APACHE_MODULE_DIRS = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules",
                      "/usr/lib/httpd/modules")
APACHE_MODULES = (
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authn_core_module", "mod_authn_core.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_user_module", "mod_authz_user.so"),
    ("alias_module", "mod_alias.so"),
    ("auth_openidc_module", "mod_auth_openidc.so"),
)
APACHE_TLS_MODULES = (
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
    ("ssl_module", "mod_ssl.so"),
)
APACHE_INSTALL_HINT = "Debian: apt-get install apache2 libapache2-mod-auth-openidc"
CANARY_AUDIENCE = "key-ceremony-canary"
"""The console's canary `aud` (console.ceremony.probes): the probe location requires it."""

JOSE_VERSION = "6.2.18"
"""panva/jose, pinned: installed once per machine under .cache/ (npm registry)."""
NODE_CONSUMER = Path(__file__).with_name("jose_consumer.mjs")


class GatewayUnavailable(RuntimeError):
    """A gateway program is missing from this machine (the fixtures turn it into a skip)."""


# --- TLS: a test CA and a loopback server certificate ----------------------------------------


def private_dir(prefix: str) -> Path:
    """A fresh directory that Apache's unprivileged children can read (0755; pytest's tmp tree
    is 0700 when running as root). It holds only test material."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class TestCA:
    """A CA certificate and a server certificate for 127.0.0.1/localhost, as PEM files."""

    __test__ = False  # not a pytest test class

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path) -> TestCA:
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway-lab test CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                x509.DNSName("localhost"),
            ]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_file = directory / "ca.pem"
        cert_file = directory / "server.pem"
        key_file = directory / "server.key"
        ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        key_file.chmod(0o600)
        ca_file.chmod(0o644)
        return cls(directory, ca_file, cert_file, key_file)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


# --- the JWKS server ----------------------------------------------------------------------


class JwksServer:
    """HTTPS on 127.0.0.1 serving `/jwks.json` with bytes the test controls.

    `set_jwks(data)` changes what is served from the next request on. `hold()` freezes the bytes
    served now: later `set_jwks` calls are kept back (the server keeps serving the old set)
    until `release()`. `fail_with(status)` answers every request with that status (`None`
    serves again). `requests` counts requests for the JWKS path; `wait_for_requests(n)` waits.
    """

    PATH = "/jwks.json"

    def __init__(self, ca: TestCA, *, initial: bytes = b'{"keys":[]}') -> None:
        self.ca = ca
        self._lock = threading.Condition()
        self._current = initial
        self._pending: bytes | None = None
        self._held = False
        self._status: int | None = None
        self._count = 0
        self._log: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # the test's controls

    def set_jwks(self, data: bytes | Mapping[str, Any]) -> None:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        with self._lock:
            if self._held:
                self._pending = raw
            else:
                self._current = raw

    def hold(self) -> None:
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:
            self._held = False
            if self._pending is not None:
                self._current, self._pending = self._pending, None

    def fail_with(self, status: int | None) -> None:
        with self._lock:
            self._status = status

    @property
    def served(self) -> bytes:
        with self._lock:
            return self._current

    @property
    def requests(self) -> int:
        with self._lock:
            return self._count

    @property
    def request_log(self) -> list[str]:
        """One line per request for the JWKS path: the client's User-Agent."""
        with self._lock:
            return list(self._log)

    def reset_count(self) -> None:
        with self._lock:
            self._count = 0
            self._log.clear()

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._count < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return self._count

    @property
    def port(self) -> int:
        assert self._server is not None, "the JWKS server is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.PATH}"

    # the server

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            is_jwks = handler.path.split("?", 1)[0] == self.PATH
            if is_jwks:
                self._count += 1
                self._log.append(handler.headers.get("User-Agent", ""))
                self._lock.notify_all()
            status, body = self._status, self._current
        if not is_jwks:
            status, body = 404, b'{"error":"not found"}'
        elif status is not None:
            body = b'{"error":"unavailable"}'
        handler.send_response(status or 200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def start(self) -> JwksServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._respond(self)

            def do_HEAD(self) -> None:
                owner._respond(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca.cert_file, self.ca.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="jwks-server",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


# --- a programmable HTTPS endpoint, and node jose behind one ---------------------------------

Answer = tuple[int, Mapping[str, str], bytes]
"""(status, headers, body) an endpoint answers."""


class HttpsEndpoint:
    """HTTPS on 127.0.0.1 (the test CA's certificate) answering every GET with `answer(path,
    headers)`; `seen` keeps each request's path and Authorization header, in order."""

    def __init__(self, ca: TestCA, answer: Callable[[str, Mapping[str, str]], Answer]) -> None:
        self.ca = ca
        self.answer = answer
        self.seen: list[tuple[str, str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the endpoint is not started"
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpsEndpoint:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.seen.append((self.path, headers.get("authorization")))
                status, extra, body = owner.answer(self.path, headers)
                with contextlib.suppress(OSError):  # a client that timed out has left
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca.cert_file, self.ca.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="https-endpoint",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class JoseGateway:
    """node jose as a bearer-token gateway: an `HttpsEndpoint` whose `/api/` requires `aud`
    `audience` and whose `/canary/` requires the canary's `aud` (both require `issuer` and one of
    `algorithms`), each answering 200 or 401 with jose's error code, as a gateway built on jose
    would. This is the probe endpoint of a consumer mod_auth_openidc cannot be (EdDSA)."""

    def __init__(self, consumer: JoseConsumer, ca: TestCA, *, issuer: str, audience: str,
                 algorithms: Sequence[str]) -> None:
        self.consumer = consumer
        self.issuer = issuer
        self.audience = audience
        self.algorithms = list(algorithms)
        self._lock = threading.Lock()  # one request at a time on the consumer's pipes
        self.endpoint = HttpsEndpoint(ca, self._answer)

    def _answer(self, path: str, headers: Mapping[str, str]) -> Answer:
        audience = {"/api/": self.audience, "/canary/": CANARY_AUDIENCE}.get(path)
        if audience is None:
            return 404, {}, b"not found\n"
        token = headers.get("authorization", "")
        if not token.startswith("Bearer "):
            return 401, {"WWW-Authenticate": "Bearer"}, b""
        ok, code = self.verify(token[len("Bearer "):], audience)
        if ok:
            return 200, {}, b"ok\n"
        return 401, {"WWW-Authenticate": f'Bearer error="invalid_token", '
                                          f'error_description="{code}"'}, b""

    def verify(self, token: str, audience: str | None = None) -> tuple[bool, str | None]:
        with self._lock:
            return self.consumer.verify(token, issuer=self.issuer,
                                        audience=audience or self.audience,
                                        algorithms=self.algorithms)

    def url(self, path: str = "/api/") -> str:
        return self.endpoint.url(path)

    def start(self) -> JoseGateway:
        self.endpoint.start()
        return self

    def stop(self) -> None:
        self.endpoint.stop()


# --- Apache httpd + mod_auth_openidc --------------------------------------------------------


def find_apache() -> tuple[str, Path]:
    """The apache2 binary and the module directory holding every module the gateway loads.

    Raises:
        GatewayUnavailable: with the precise missing piece.
    """
    binary = next((b for b in APACHE_BIN_CANDIDATES if Path(b).is_file()),
                  shutil.which("apache2") or shutil.which("httpd"))
    if binary is None:
        raise GatewayUnavailable(f"apache2 is not installed ({APACHE_INSTALL_HINT})")
    for directory in map(Path, APACHE_MODULE_DIRS):
        if (directory / "mod_mpm_event.so").is_file():
            missing = [f for _, f in APACHE_MODULES + APACHE_TLS_MODULES
                       if not (directory / f).is_file()]
            if missing:
                raise GatewayUnavailable(
                    f"{', '.join(missing)} missing from {directory} ({APACHE_INSTALL_HINT})")
            return binary, directory
    raise GatewayUnavailable(f"no Apache module directory found ({APACHE_INSTALL_HINT})")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged_user() -> tuple[str, str] | None:
    """Apache refuses to serve as root: when we are root, children run as www-data/nobody."""
    if os.geteuid() != 0:
        return None
    for user, group in (("www-data", "www-data"), ("nobody", "nogroup"), ("nobody", "nobody")):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user, group
    return None


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class ApacheGateway:
    """`apache2 -f CONF -k start` with mod_auth_openidc protecting `/api/` (AuthType oauth20).

    `issuer`/`audience` add `Require claim iss:…`/`Require claim aud:…` (mod_auth_openidc
    2.4.12 checks neither by itself for bearer tokens). `site_conf`, when given, replaces the
    generated resource-server block (the server-wide lines, `OIDCCABundlePath` for the test CA
    and a `/api/` alias to a 200 page stay), so a rendered `apache-openidc.conf` is tested as an
    operator would include it.

    `tls` serves HTTPS (mod_ssl) with the test CA's 127.0.0.1 certificate instead of HTTP: a
    console probe only speaks https. `canary_location` adds `/canary/`, the probe endpoint an
    operator sets up for the console's evidence before activation: the same JWKS, the same
    issuer, but `aud` must be the canary's, so a canary never opens `/api/` and an API token
    never answers a probe.
    """

    def __init__(self, directory: Path, *, jwks_uri: str | None, ca_file: Path | None,
                 issuer: str | None = None, audience: str | None = None,
                 refresh_interval: int = 300, validate_server: bool = True,
                 site_conf: Path | None = None, log_level: str = "warn auth_openidc:info",
                 tls: TestCA | None = None, canary_location: bool = False,
                 ) -> None:
        self.binary, self.module_dir = find_apache()
        self.directory = directory
        self.jwks_uri = jwks_uri
        self.ca_file = ca_file
        self.issuer = issuer
        self.audience = audience
        self.refresh_interval = refresh_interval
        self.validate_server = validate_server
        self.site_conf = site_conf
        self.log_level = log_level
        self.tls = tls
        self.canary_location = canary_location
        self.port = free_port()
        self.conf = directory / "httpd.conf"
        self.pid_file = directory / "httpd.pid"
        self.error_log = directory / "error.log"
        self.www = directory / "www"
        self.startup_log = directory / "startup.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # configuration

    def resource_server_block(self) -> list[str]:
        """The mod_auth_openidc lines under test (what an operator's site would carry)."""
        lines = [
            # Random per test run; oauth20 bearer validation does not need it, the module
            # refuses to start without it.
            f'OIDCCryptoPassphrase "{os.urandom(16).hex()}"',
            f'OIDCOAuthVerifyJwksUri "{self.jwks_uri}"',
            f"OIDCJWKSRefreshInterval {self.refresh_interval}",
        ]
        if self.ca_file is not None:
            lines.append(f'OIDCCABundlePath "{self.ca_file}"')
        if not self.validate_server:
            lines.append("OIDCOAuthSSLValidateServer Off")
        requires = ["Require valid-user"]
        if self.issuer is not None:
            requires.append(f'Require claim "iss:{self.issuer}"')
        if self.audience is not None:
            requires.append(f'Require claim "aud:{self.audience}"')
        lines += ['<Location "/api/">', "  AuthType oauth20", "  <RequireAll>"]
        lines += [f"    {r}" for r in requires]
        lines += ["  </RequireAll>", "</Location>"]
        if self.canary_location:
            canary = ["Require valid-user", f'Require claim "aud:{CANARY_AUDIENCE}"']
            if self.issuer is not None:
                canary.append(f'Require claim "iss:{self.issuer}"')
            lines += ['<Location "/canary/">', "  AuthType oauth20", "  <RequireAll>"]
            lines += [f"    {r}" for r in canary]
            lines += ["  </RequireAll>", "</Location>"]
        return lines

    def url(self, path: str = "/api/") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def render_conf(self) -> str:
        (self.directory / "run").mkdir(exist_ok=True)
        self.www.mkdir(exist_ok=True)
        (self.www / "ok.txt").write_text("ok\n")
        for path in (self.www, self.www / "ok.txt"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        lines = [
            "# gateway-lab: Apache httpd as a user process (tests/gateway/harness.py)",
            f'ServerRoot "{self.directory}"',
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{self.port}",
            f'PidFile "{self.pid_file}"',
            f'ErrorLog "{self.error_log}"',
            f"LogLevel {self.log_level}",
            f'DefaultRuntimeDir "{self.directory / "run"}"',
        ]
        modules = APACHE_MODULES + (APACHE_TLS_MODULES if self.tls is not None else ())
        lines += [f'LoadModule {name} "{self.module_dir / file}"' for name, file in modules]
        if self.tls is not None:
            lines += ["SSLEngine on", f'SSLCertificateFile "{self.tls.cert_file}"',
                      f'SSLCertificateKeyFile "{self.tls.key_file}"',
                      f'SSLSessionCache "shmcb:{self.directory / "run" / "ssl_cache"}(51200)"']
        user = _unprivileged_user()
        if user is not None:
            lines += [f"User {user[0]}", f"Group {user[1]}"]
        lines += [
            # One small child: a single shm cache, little memory on 2 cores.
            "StartServers 1", "ServerLimit 1", "ThreadsPerChild 8", "MaxRequestWorkers 8",
            "ThreadLimit 8", "MinSpareThreads 1", "MaxSpareThreads 8",
            "KeepAlive Off",
            f'Alias "/api/" "{self.www / "ok.txt"}"',
            f'Alias "/canary/" "{self.www / "ok.txt"}"',
            f'<Directory "{self.www}">', "  Require all granted", "</Directory>",
        ]
        if self.site_conf is not None:
            if self.ca_file is not None:  # the operator's JWKS host has a public certificate
                lines.append(f'OIDCCABundlePath "{self.ca_file}"')
            lines.append(f'Include "{self.site_conf}"')
        else:
            lines += self.resource_server_block()
        return "\n".join(lines) + "\n"

    def write_conf(self) -> Path:
        self.conf.write_text(self.render_conf())
        return self.conf

    def check_config(self) -> subprocess.CompletedProcess[str]:
        """`apache2 -t` on the configuration (syntax and every module's directive checks)."""
        self.write_conf()
        return subprocess.run([self.binary, "-t", "-f", str(self.conf)], capture_output=True,
                              text=True, timeout=30, check=False)

    # process

    def start(self, timeout: float = 15.0) -> ApacheGateway:
        """`apache2 -f CONF -k start -D FOREGROUND`: the same start as an operator's, kept in
        the foreground so that this process is its parent (it reaps it; no stray daemon)."""
        for attempt in range(3):
            self.write_conf()
            with self.startup_log.open("wb") as startup:
                self._proc = subprocess.Popen(
                    [self.binary, "-f", str(self.conf), "-k", "start", "-D", "FOREGROUND"],
                    stdin=subprocess.DEVNULL, stdout=startup, stderr=startup,
                    start_new_session=True)
            if self._wait_up(timeout):
                return self
            self.stop()
            if "Address already in use" in self.log_tail() and attempt < 2:
                self.port = free_port()  # lost a race for the port: try another
                continue
            break
        raise RuntimeError(f"apache2 did not start listening on 127.0.0.1:{self.port}:\n"
                           f"{self.startup_log.read_text(errors='replace')}{self.log_tail()}")

    def _wait_up(self, timeout: float) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if self.pid_file.is_file():
                with contextlib.suppress(OSError), \
                        socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            time.sleep(0.05)
        return False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the parent (it stops its children) and wait for it; SIGKILL after
        `timeout`, and any child left behind, by pid."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        children = _children(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        for child in children:  # normally gone with the parent; never leave one behind
            if _alive(child):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)

    def restart(self) -> None:
        """Stop and start: empties mod_auth_openidc's shm cache, so the next token fetches
        the JWK Set again (the deterministic way to make it re-fetch a *known* kid)."""
        self.stop()
        self.start()

    # requests

    def get(self, token: str | None, path: str = "/api/") -> Response:
        conn = (http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                            context=self.tls.client_context())
                if self.tls is not None else
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=30))
        try:
            headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                            resp.read())
        finally:
            conn.close()

    def request(self, token: str | None) -> int:
        """GET /api/ with `Authorization: Bearer TOKEN`; the HTTP status."""
        return self.get(token).status

    def log_tail(self, size: int = 4000) -> str:
        if not self.error_log.is_file():
            return ""
        return self.error_log.read_text(errors="replace")[-size:]

    def log_mark(self) -> int:
        return self.error_log.stat().st_size if self.error_log.is_file() else 0

    def log_since(self, mark: int) -> str:
        if not self.error_log.is_file():
            return ""
        with self.error_log.open("rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")


def _children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (Linux /proc); empty elsewhere."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The daemonised httpd is re-parented; until its new parent reaps it, it is a zombie.
    with contextlib.suppress(OSError, IndexError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    return True


# --- node jose ---------------------------------------------------------------------------


def jose_dir() -> Path:
    return CACHE / "gateway-node" / f"jose-{JOSE_VERSION}"


def install_jose(timeout: float = 300.0) -> Path:
    """`npm install --no-save jose@JOSE_VERSION` into .cache/ once per machine (locked).

    Raises:
        GatewayUnavailable: node/npm missing, or the install failed (with npm's message).
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise GatewayUnavailable("node and npm are not installed (Node 20 or later is needed)")
    target = jose_dir()
    marker = target / "node_modules" / "jose" / "package.json"
    if marker.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix="jose-", dir=target.parent))
        (staging / "package.json").write_text('{"private": true}\n')
        result = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--ignore-scripts",
             "--no-package-lock", f"jose@{JOSE_VERSION}"],
            cwd=staging, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0 or not (staging / "node_modules" / "jose").is_dir():
            shutil.rmtree(staging, ignore_errors=True)
            raise GatewayUnavailable(
                f"npm install jose@{JOSE_VERSION} failed: {result.stderr.strip()[-500:]}")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


class JoseConsumer:
    """A node process verifying tokens with jose's `createRemoteJWKSet` + `jwtVerify`.

    It keeps one remote JWK Set for its life, with jose's own caching (`cache_max_age_ms`,
    default 10 min; `cooldown_ms`, default 30 s: no re-fetch for an unknown kid within that long
    after the last fetch). `restart()` gives a fresh cache. The test CA is trusted through
    NODE_EXTRA_CA_CERTS.
    """

    def __init__(self, jwks_url: str, ca_file: Path, *, cache_max_age_ms: int = 600_000,
                 cooldown_ms: int = 30_000) -> None:
        self.jwks_url = jwks_url
        self.ca_file = ca_file
        self.cache_max_age_ms = cache_max_age_ms
        self.cooldown_ms = cooldown_ms
        self.directory = install_jose()
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> JoseConsumer:
        script = self.directory / NODE_CONSUMER.name
        if not script.is_file() or script.read_bytes() != NODE_CONSUMER.read_bytes():
            shutil.copyfile(NODE_CONSUMER, script)  # bare 'jose' resolves from its folder
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        env["NODE_EXTRA_CA_CERTS"] = str(self.ca_file)
        self._proc = subprocess.Popen(
            ["node", str(script), self.jwks_url, str(self.cache_max_age_ms),
             str(self.cooldown_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, cwd=self.directory)
        ready = self._read()
        if ready.get("ready") is not True:
            raise RuntimeError(f"jose consumer did not start: {ready}")
        return self

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            err = self._proc.stderr.read() if self._proc.stderr is not None else ""
            raise RuntimeError(f"jose consumer exited: {err[-2000:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    def verify_full(self, token: str, *, issuer: str | None = None,
                    audience: str | None = None,
                    algorithms: Sequence[str] | None = None) -> dict[str, Any]:
        """The consumer's answer: {"ok": true, "payload", "header"} or {"ok": false, "code",
        "message"}."""
        if self._proc is None:
            self.start()
        assert self._proc is not None and self._proc.stdin is not None
        request = {"token": token, "issuer": issuer, "audience": audience,
                   "algorithms": list(algorithms) if algorithms is not None else None}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def verify(self, token: str, **checks: Any) -> tuple[bool, str | None]:
        """(True, None) when jose accepts the token, else (False, jose's error code, e.g.
        ERR_JWS_SIGNATURE_VERIFICATION_FAILED, ERR_JWKS_NO_MATCHING_KEY, ERR_JWT_EXPIRED)."""
        answer = self.verify_full(token, **checks)
        return bool(answer["ok"]), None if answer["ok"] else str(answer.get("code"))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def restart(self) -> None:
        self.stop()
        self.start()


# --- tokens signed in software ------------------------------------------------------------

SoftwareKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def b64url(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign_jwt(key: SoftwareKey, alg: str, kid: str | None, claims: Mapping[str, Any],
             *, typ: str = "JWT") -> str:
    """A compact JWS signed with a software key (cryptography): ES256/ES384, RS256, PS256,
    EdDSA (Ed25519)."""
    header: dict[str, str] = {"alg": alg, "typ": typ}
    if kid is not None:
        header["kid"] = kid
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(dict(claims), separators=(",", ":")).encode()))
    data = signing_input.encode("ascii")
    if alg in ("ES256", "ES384") and isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        size = (key.curve.key_size + 7) // 8
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif alg == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256" and isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                             hashes.SHA256())
    elif alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(data)
    else:
        raise ValueError(f"cannot sign {alg} with {type(key).__name__}")
    return f"{signing_input}.{b64url(signature)}"


def wall_claims(*, issuer: str, audience: str | None = None, lifetime: int = 300,
                **extra: Any) -> dict[str, Any]:
    """Claims on the real clock (gateways check `exp` against it)."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": issuer, "sub": "gateway-lab", "iat": now,
                              "exp": now + lifetime}
    if audience is not None:
        claims["aud"] = audience
    claims.update(extra)
    return claims

