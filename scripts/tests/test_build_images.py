"""The container images `make images` ships (scripts/build-images.sh), built with buildah from the
debug binaries `cargo test` already built (so CI needs no second, release build; the images are
the same but for the binary), then read back from their OCI archives and run with buildah:

- each archive is tagged with the chart's appVersion, runs its binary as 65532:65532 from the
  entrypoint, and holds the binary, exactly the libraries it links, the users and the CA bundle;
- its configuration is the one feed-server/Containerfile and operator/Containerfile give the
  images users build in CI (they cannot be built here: no base image can be pulled);
- the feed-server image serves /healthz and reaches a real Redis by host name, as user 65532,
  with arguments passed through the entrypoint, and writes nothing into the image;
- the operator image prints its usage;
- the script refuses bad input with a clear message and writes nothing.

buildah is installed by scripts/install-deps.sh: without it these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-images.sh"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
CONTAINERFILES = {"feed-server": ROOT / "feed-server" / "Containerfile", "feedroll-operator": ROOT / "operator" / "Containerfile"}
NONROOT = "65532:65532"
# What the Containerfiles' runtime base (gcr.io/distroless/cc-debian12:nonroot) sets itself; the
# offline images set it explicitly.
DISTROLESS_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
}
# Labels whose value comes from a build argument in the Containerfiles.
BUILD_ARG_LABELS = {"org.opencontainers.image.version", "org.opencontainers.image.revision"}
# A hang guard for a container start, not a performance goal.
START_DEADLINE_S = 60


def app_version() -> str:
    return str(yaml.safe_load((ROOT / "charts" / "feedroll" / "Chart.yaml").read_text())["appVersion"])


def buildah_path() -> str:
    path = shutil.which("buildah")
    assert path, "buildah is not installed: run scripts/install-deps.sh (make test does)"
    return path


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- reading an OCI archive


@dataclass
class Archive:
    """One image in an OCI archive (oci-layout, index.json, blobs/sha256/...)."""

    path: Path

    @cached_property
    def tar(self) -> tarfile.TarFile:
        return tarfile.open(self.path)

    def _json(self, name: str) -> dict:
        member = self.tar.extractfile(name)
        assert member is not None, f"{self.path}: {name} is not a file"
        return json.load(member)

    def _blob(self, digest: str) -> str:
        algorithm, hex_digest = digest.split(":", 1)
        return f"blobs/{algorithm}/{hex_digest}"

    @cached_property
    def index(self) -> dict:
        return self._json("index.json")

    @cached_property
    def manifest(self) -> dict:
        (entry,) = self.index["manifests"]
        return self._json(self._blob(entry["digest"]))

    @cached_property
    def config(self) -> dict:
        return self._json(self._blob(self.manifest["config"]["digest"]))

    @cached_property
    def _layers(self) -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes]]:
        """One pass over every layer, later layers winning: path (no leading /) -> entry, and the
        content of the files up to 1 MiB (configuration, not binaries)."""
        entries: dict[str, tarfile.TarInfo] = {}
        small: dict[str, bytes] = {}
        for layer in self.manifest["layers"]:
            blob = self.tar.extractfile(self._blob(layer["digest"]))
            with tarfile.open(fileobj=blob, mode="r:*") as t:
                for m in t:
                    path = m.name.removeprefix("./").lstrip("/")
                    entries[path] = m
                    data = t.extractfile(m) if m.isfile() and m.size <= 1 << 20 else None
                    if data is not None:
                        small[path] = data.read()
        return entries, small

    @property
    def files(self) -> dict[str, tarfile.TarInfo]:
        return self._layers[0]

    def read(self, path: str) -> bytes:
        """A small file's content."""
        content = self._layers[1].get(path)
        assert content is not None, f"{self.path}: no file {path} (of at most 1 MiB) in the image"
        return content


# ---------------------------------------------------------------- the Containerfiles


def containerfile_runtime(path: Path) -> dict:
    """The final stage of a Containerfile, as an image config: User, Entrypoint, WorkingDir,
    ExposedPorts, Env, Labels, plus the COPY destinations and the build stage's cargo command.
    Knows the instructions these files use, one per line with `\\` continuations."""
    lines, joined = [], ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        joined += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(joined.strip())
            joined = ""
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), rest.strip()))
    assert len(stages) == 2, f"{path}: expected a build stage and a runtime stage"
    build, runtime = stages
    cfg: dict = {"Env": {}, "Labels": {}, "ExposedPorts": set(), "Copies": [], "Build": []}
    for instruction, rest in runtime:
        if instruction == "USER":
            cfg["User"] = rest
        elif instruction == "ENTRYPOINT":
            cfg["Entrypoint"] = json.loads(rest)
        elif instruction == "WORKDIR":
            cfg["WorkingDir"] = rest
        elif instruction == "EXPOSE":
            cfg["ExposedPorts"] |= {p if "/" in p else f"{p}/tcp" for p in rest.split()}
        elif instruction in ("ENV", "LABEL"):
            target = cfg["Env"] if instruction == "ENV" else cfg["Labels"]
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                target[key] = value
        elif instruction == "COPY":
            cfg["Copies"].append(rest.split()[-1])
    cfg["Build"] = [rest for instruction, rest in build if instruction == "RUN"]
    return cfg


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def built() -> Iterator[dict[str, Archive]]:
    """Both images, built once from the debug binaries into a directory removed afterwards."""
    buildah_path()
    out = Path(tempfile.mkdtemp(prefix="images-test-", dir=TARGET if TARGET.is_dir() else None))
    try:
        started = time.monotonic()
        proc = run_script("--profile", "debug", "--out", str(out))
        assert proc.returncode == 0, f"build-images.sh failed:\n{proc.stdout}{proc.stderr}"
        print(f"\nbuild-images.sh --profile debug: {time.monotonic() - started:.1f}s")
        assert sorted(p.name for p in out.iterdir()) == ["feed-server.oci.tar", "feedroll-operator.oci.tar"]
        yield {name: Archive(out / f"{name}.oci.tar") for name in CONTAINERFILES}
    finally:
        shutil.rmtree(out, ignore_errors=True)


@dataclass
class Buildah:
    """buildah on a private vfs storage root (never the system's), chroot isolation."""

    root: Path

    def argv(self, *args: str) -> list[str]:
        return [buildah_path(), "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"), "--storage-driver", "vfs", *args]

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True)
        assert proc.returncode == 0, f"buildah {' '.join(args)}: {proc.stderr}"
        return proc.stdout.strip()

    def container(self, archive: Archive) -> str:
        """A working container made from the archive itself, as a registry pull would make it."""
        return self("from", "--quiet", f"oci-archive:{archive.path}")

    def run(self, container: str, argv: list[str]) -> list[str]:
        return self.argv("run", "--isolation", "chroot", container, "--", *argv)


@pytest.fixture(scope="module")
def buildah() -> Iterator[Buildah]:
    root = Path(tempfile.mkdtemp(prefix="images-run-", dir=TARGET if TARGET.is_dir() else None))
    b = Buildah(root)
    try:
        yield b
    finally:
        subprocess.run(b.argv("rm", "--all"), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def background(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    """Runs argv in its own process group and ends the whole group (buildah, its chroot runtime and
    the binary) on the way out."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def get(url: str, proc: subprocess.Popen[str]) -> tuple[int, str]:
    """The first answer from url, retried while the container starts; fails if it exits."""
    deadline = time.monotonic() + START_DEADLINE_S
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the container exited ({proc.returncode}) before answering {url}:\n{output}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            last = str(e)
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url} within {START_DEADLINE_S}s: {last}")


def processes_named(name: str, needle: str) -> list[int]:
    """PIDs of processes called `name` whose command line contains `needle` (chroot isolation
    shares the PID namespace with the host)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == name and needle in (entry / "cmdline").read_text():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def redis_port() -> Iterator[int]:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed: run scripts/install-deps.sh"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait()


# ---------------------------------------------------------------- the archives


@pytest.mark.parametrize("name", list(CONTAINERFILES))
def test_archive_is_tagged_with_the_chart_app_version(built, name):
    image = built[name]
    (entry,) = image.index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == app_version()
    assert image.config["config"]["Labels"]["org.opencontainers.image.version"] == app_version()
    assert image.config["config"]["Labels"]["org.opencontainers.image.title"] == name


@pytest.mark.parametrize("name", list(CONTAINERFILES))
def test_config_runs_the_binary_as_nonroot(built, name):
    cfg = built[name].config
    assert cfg["os"] == "linux"
    c = cfg["config"]
    assert c["User"] == NONROOT  # numeric: runAsNonRoot can verify it without an /etc/passwd lookup
    assert c["Entrypoint"] == [f"/usr/local/bin/{name}"]
    assert not c.get("Cmd"), "arguments are the container's args, passed to the binary"
    assert c["ExposedPorts"] == {"8080/tcp": {}}
    assert c["WorkingDir"] == "/home/nonroot"


@pytest.mark.parametrize("name", list(CONTAINERFILES))
def test_config_is_the_containerfiles(built, name):
    """The offline image and the CI recipe give users the same container."""
    want = containerfile_runtime(CONTAINERFILES[name])
    got = built[name].config["config"]
    for key in ("User", "Entrypoint", "WorkingDir"):
        assert got[key] == want[key], key
    assert set(got["ExposedPorts"]) == want["ExposedPorts"]
    assert dict(e.split("=", 1) for e in got["Env"]) == {**DISTROLESS_ENV, **want["Env"]}
    labels = got["Labels"]
    assert set(labels) == set(want["Labels"])
    assert {k: v for k, v in labels.items() if k not in BUILD_ARG_LABELS} == {
        k: v for k, v in want["Labels"].items() if k not in BUILD_ARG_LABELS
    }
    assert want["Copies"] == want["Entrypoint"], "the Containerfile copies the binary to its entrypoint"
    (build,) = want["Build"]
    assert f"cargo build --release --locked -p {name}" in build
    assert f"target/release/{name} " in build


@pytest.mark.parametrize("name", list(CONTAINERFILES))
def test_layer_holds_the_binary_its_libraries_users_and_ca_bundle(built, name):
    image = built[name]
    files = image.files
    binary = TARGET / "debug" / name
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    libraries = {
        word.lstrip("/") for line in ldd.splitlines() for word in line.split() if word.startswith("/")
    }
    assert any("ld-linux" in lib for lib in libraries) and any("libc.so" in lib for lib in libraries)
    regular = {path for path, m in files.items() if m.isfile()}
    assert regular == {
        f"usr/local/bin/{name}",
        *libraries,
        "etc/passwd",
        "etc/group",
        "etc/nsswitch.conf",
        "etc/ssl/certs/ca-certificates.crt",
    }
    assert files[f"usr/local/bin/{name}"].size == binary.stat().st_size
    assert "nonroot:x:65532:65532:" in image.read("etc/passwd").decode()
    assert "nonroot:x:65532:" in image.read("etc/group").decode()
    ca = image.read("etc/ssl/certs/ca-certificates.crt")
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----") and ca.count(b"BEGIN CERTIFICATE") > 10
    # Root owns everything but the user's home: the process (65532) can change nothing else.
    assert {p for p, m in files.items() if (m.uid, m.gid) != (0, 0)} == {"home/nonroot"}
    assert files["home/nonroot"].uid == 65532
    assert not [p for p, m in files.items() if m.mode & 0o6000], "no setuid/setgid files"
    others_writable = {p for p, m in files.items() if m.mode & 0o002 and not m.issym()}
    assert others_writable == {"tmp"} and files["tmp"].mode & 0o1000, "only /tmp, sticky"


# ---------------------------------------------------------------- running them


def test_feed_server_image_serves_as_nonroot_and_reaches_redis_by_name(built, buildah, redis_port):
    image = built["feed-server"]
    ctr = buildah.container(image)
    port = free_port()
    # The entrypoint from the image config, then arguments, as a kubelet passes a pod's args.
    argv = image.config["config"]["Entrypoint"] + [
        "--listen",
        f"127.0.0.1:{port}",
        "--redis-url",
        f"redis://localhost:{redis_port}",  # a host name, resolved by the image's glibc
        "--log-format",
        "text",
    ]
    with background(buildah.run(ctr, argv)) as proc:
        status, body = get(f"http://127.0.0.1:{port}/healthz", proc)
        assert status == 200, body
        status, body = get(f"http://127.0.0.1:{port}/readyz", proc)
        deadline = time.monotonic() + START_DEADLINE_S
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, body = get(f"http://127.0.0.1:{port}/readyz", proc)
        assert status == 200 and json.loads(body)["store"] == "redis", f"/readyz {status}: {body}"
        # Served from the host's network namespace (chroot isolation shares it), as user 65532
        # with no capabilities.
        (pid,) = processes_named("feed-server", f"127.0.0.1:{port}")
        status_lines = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        assert status_lines["Uid"].split() == ["65532"] * 4
        assert status_lines["Gid"].split() == ["65532"] * 4
        assert int(status_lines["CapEff"], 16) == 0
        assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    assert proc.returncode is not None
    # The only places 65532 may write (see the layer test) are still empty: the server runs with
    # the chart's readOnlyRootFilesystem.
    mount = Path(buildah("mount", ctr))
    try:
        assert list((mount / "tmp").iterdir()) == []
        assert list((mount / "home" / "nonroot").iterdir()) == []
    finally:
        buildah("umount", ctr)


def test_feed_server_image_passes_bad_arguments_to_the_binary(built, buildah):
    image = built["feed-server"]
    ctr = buildah.container(image)
    proc = subprocess.run(
        buildah.run(ctr, image.config["config"]["Entrypoint"] + ["--no-such-flag"]), capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--no-such-flag" in proc.stderr and "Usage: feed-server" in proc.stderr


def test_operator_image_prints_usage(built, buildah):
    image = built["feedroll-operator"]
    ctr = buildah.container(image)
    proc = subprocess.run(
        buildah.run(ctr, image.config["config"]["Entrypoint"] + ["--help"]), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: feedroll-operator" in proc.stdout
    for command in ("run", "check", "crd"):
        assert f"\n  {command} " in proc.stdout, command


# ---------------------------------------------------------------- bad input


def test_help_prints_usage():
    proc = run_script("--help")
    assert proc.returncode == 0
    assert "Usage: scripts/build-images.sh" in proc.stdout and "--profile release|debug" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "fast"], "--profile must be release or debug, not 'fast'"),
        (["--profile"], "--profile needs a value"),
        (["--out"], "--out needs a directory"),
        (["--push"], "unknown argument: --push"),
        (["--out", "a:b"], "the output directory 'a:b' must not contain ':'"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, args, message):
    proc = run_script(*args, env={"CARGO_TARGET_DIR": str(tmp_path)})
    assert proc.returncode != 0
    assert message in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_buildah_it_says_how_to_install_it(tmp_path):
    out = tmp_path / "out"
    proc = run_script("--profile", "debug", "--out", str(out), env={"BUILDAH": str(tmp_path / "no-buildah")})
    assert proc.returncode == 1
    assert "buildah not found" in proc.stderr and "scripts/install-deps.sh" in proc.stderr
    assert not out.exists()


def test_without_the_binary_it_says_how_to_build_it(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "release").mkdir()
    proc = run_script("--out", str(out), env={"CARGO_TARGET_DIR": str(tmp_path)})
    assert proc.returncode == 1
    assert f"binary {tmp_path}/release/feed-server missing" in proc.stderr
    assert "cargo build --release --locked -p feed-server" in proc.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["release"]
