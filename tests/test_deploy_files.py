"""The container image and compose files of ``vecsim serve`` (Dockerfile, .dockerignore, compose/,
docs/deploy.md), checked without a Docker engine: the files are parsed and the rules a deployment
relies on are asserted (pinned images, loopback ports, secrets only from the environment, health
checks on /readyz, a shared queue and data folder for replicas, a non-root image that installs
through the constraints file), and every ``VECSIM_*`` variable they name is checked against the
settings the code reads, so the files cannot drift from the service. Where a ``docker`` CLI with
the compose plugin exists, ``docker compose config`` validates each compose file as well."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

from .conftest import MILVUS_IMAGE, QDRANT_IMAGE  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose"
COMPOSE_FILES = sorted(COMPOSE.glob("*.yml"))
#: The compose files that run the service (the others run a bare database).
SERVICE_STACKS = {"serve-milvus.yml": MILVUS_IMAGE, "serve-qdrant.yml": QDRANT_IMAGE}
DOCKERFILE = ROOT / "Dockerfile"
DOCS = ROOT / "docs" / "deploy.md"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
#: Values of environment variables whose name says they are secrets.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|ACCESS_KEY|AUTH|TOKEN")
#: ``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}`` (compose's interpolation).
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
REQUIRED = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$")
#: compose/milvus.yml is the development database of docs/milvus-server.md (kept as it was): its
#: MinIO keeps MinIO's default credentials and is reachable only inside its compose network.
#: The service stacks take MinIO's credentials from the environment.
LITERAL_SECRETS_ALLOWED = {"milvus.yml"}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _defaults(value: str) -> str:
    """``value`` as compose reads it with no variable set: ``${X:-d}`` -> ``d``, others -> ''."""
    return VARIABLE.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", value)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _settings_fields() -> set[str]:
    pytest.importorskip("pydantic_settings", reason="the serve extra is not installed")
    from vecsim.server.settings import ServerSettings

    return set(ServerSettings.model_fields)


# --- the compose files -------------------------------------------------------------------------------


def test_the_compose_files_are_there():
    names = {p.name for p in COMPOSE_FILES}
    assert {"milvus.yml", "qdrant.yml", *SERVICE_STACKS} <= names, names


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_image_is_pinned(path):
    for name, service in _load(path)["services"].items():
        image = service.get("image")
        assert image, f"{path.name}: service {name} has no image"
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{path.name}: {name}'s image {image!r} has no tag"
        assert tag != "latest" and "$" not in image, f"{path.name}: {name}'s image {image!r} is not pinned"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_published_port_is_on_loopback(path):
    for name, service in _load(path)["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{path.name}: {name} publishes {port!r} beyond 127.0.0.1"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_volumes_are_declared_and_bind_mounts_exist(path):
    doc = _load(path)
    declared = set(doc.get("volumes") or {})
    for name, service in doc["services"].items():
        for mount in service.get("volumes", []):
            source = mount["source"] if isinstance(mount, dict) else str(mount).split(":")[0]
            if source.startswith((".", "/")):
                assert (path.parent / source).exists(), f"{path.name}: {name} mounts {source}, which is not there"
            else:
                assert source in declared, f"{path.name}: {name} uses volume {source!r}, not declared under volumes:"


@pytest.mark.parametrize("path", [p for p in COMPOSE_FILES if p.name not in LITERAL_SECRETS_ALLOWED],
                         ids=lambda p: p.name)
def test_secrets_come_from_the_environment_and_are_required(path):
    """Every secret is ``${VAR:?message}``: compose refuses to start without it, and no password is
    written in the file."""
    found = 0
    for name, service in _load(path)["services"].items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                found += 1
                assert REQUIRED.match(value), f"{path.name}: {name}.{key} = {value!r} is not ${{VAR:?message}}"
            userinfo = re.match(r"^[a-z]+://([^@/]*)@", value)
            if userinfo:  # a password inside a URL (the Redis queue)
                found += 1
                password = userinfo.group(1).partition(":")[2]
                assert REQUIRED.match(password), f"{path.name}: {name}.{key} has a literal password in its URL"
        command = service.get("command")
        words = command if isinstance(command, list) else shlex.split(command or "")
        for flag, value in zip(words, words[1:]):
            if flag in ("--requirepass", "--password", "--masterauth"):
                found += 1
                assert REQUIRED.match(value), f"{path.name}: {name} passes {flag} a literal value"
    assert found, f"{path.name}: no secret found; is this file still the one the test was written for?"


@pytest.mark.parametrize("stack", sorted(SERVICE_STACKS))
def test_service_stack(stack):
    doc = _load(COMPOSE / stack)
    services = doc["services"]
    vecsim = services["vecsim"]
    env = _environment(vecsim)

    # the service's image is this version's, built from this checkout
    assert vecsim["image"] == f"vecsim:{VERSION}"
    build = vecsim["build"] if isinstance(vecsim["build"], str) else vecsim["build"]["context"]
    assert ((COMPOSE / build).resolve() / "Dockerfile").is_file()

    # its database is the version the test suite runs against
    database = [s["image"] for n, s in services.items() if n in ("milvus", "qdrant")]
    assert database == [SERVICE_STACKS[stack]], database

    # healthy only once /readyz answers; started only once what it needs is healthy
    assert "/readyz" in " ".join(_strings(vecsim["healthcheck"]["test"]))
    depends = vecsim["depends_on"]
    assert isinstance(depends, dict) and depends, "depends_on must name conditions"
    for dep, rule in depends.items():
        assert rule.get("condition") == "service_healthy", f"{stack}: vecsim waits for {dep} only to start"
        assert services[dep].get("healthcheck"), f"{stack}: {dep} has no healthcheck to wait for"
    for name, service in services.items():
        assert service.get("healthcheck"), f"{stack}: {name} has no healthcheck"
        for dep, rule in (service.get("depends_on") or {}).items():
            assert rule.get("condition") == "service_healthy", f"{stack}: {name} waits for {dep} only to start"

    # replicas share the queue (Redis) and the data folder (a named volume): docs/service.md
    replicas = int(_defaults(str(vecsim.get("deploy", {}).get("replicas", 1))))
    assert replicas > 1, "the stacks run several replicas by default"
    assert env["VECSIM_QUEUE"].startswith("redis://") and env["VECSIM_QUEUE"].split("@")[-1].startswith("redis:")
    assert "redis" in services and depends.get("redis")
    data_dir = env["VECSIM_DATA_DIR"]
    mounts = [m if isinstance(m, str) else f"{m['source']}:{m['target']}" for m in vecsim["volumes"]]
    shared = [m for m in mounts if data_dir.startswith(m.split(":")[1]) and m.split(":")[0] in (doc["volumes"] or {})]
    assert shared, f"{stack}: the data folder {data_dir} is not on a named volume shared by the replicas"
    assert not vecsim.get("ports") and not vecsim.get("container_name"), "replicas cannot share a host port or a name"

    # one published address in front of the replicas
    proxy = services["proxy"]
    assert any(str(p).endswith(":8000") for p in proxy["ports"])
    assert proxy["depends_on"]["vecsim"]["condition"] == "service_healthy"

    # a graceful stop has time to finish: the whole shutdown takes at most shutdown_timeout_s
    # (Dockerfile, STOPSIGNAL), and Docker must not kill before it is over
    pytest.importorskip("pydantic_settings", reason="the serve extra is not installed")
    from vecsim.server.settings import ServerSettings

    timeout = ServerSettings.model_fields["shutdown_timeout_s"].default
    assert _seconds(vecsim["stop_grace_period"]) >= timeout + 10


def _seconds(duration: str) -> float:
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert parts and duration, f"not a compose duration: {duration!r}"
    h, m, s = parts.groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)


def test_the_proxy_waits_longer_than_the_service():
    conf = (COMPOSE / "nginx.conf").read_text()
    read = re.search(r"proxy_read_timeout\s+(\d+)s;", conf)
    pytest.importorskip("pydantic_settings", reason="the serve extra is not installed")
    from vecsim.server.settings import ServerSettings

    assert read and int(read.group(1)) > ServerSettings.model_fields["request_timeout_s"].default
    assert "client_max_body_size 0;" in conf and "proxy_request_buffering off;" in conf


# --- the Dockerfile ---------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        current += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            word, _, args = current.strip().partition(" ")
            out.append((word.upper(), args.strip()))
            current = ""
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text())


def _args(instructions) -> dict[str, str]:
    return dict(a.split("=", 1) for w, a in instructions if w == "ARG" and "=" in a)


def _expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def _final_stage(instructions):
    last = max(i for i, (w, _) in enumerate(instructions) if w == "FROM")
    return instructions[last:]


def test_dockerfile_base_image_is_pinned(dockerfile):
    args = _args(dockerfile)
    stages = {a.split()[-1] for w, a in dockerfile if w == "FROM" and " AS " in a.upper()}
    for word, arg in dockerfile:
        if word == "FROM":
            image = _expand(arg.split()[0], args)
            if image in stages:
                continue
            assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), f"base image {image!r} is not a pinned 3.11 slim"


def test_dockerfile_runs_as_a_non_root_user(dockerfile):
    final = _final_stage(dockerfile)
    args = _args(dockerfile)
    words = [w for w, _ in final]
    users = [(i, _expand(a, args)) for i, (w, a) in enumerate(final) if w == "USER"]
    assert users, "the runtime stage has no USER"
    last_index, user = users[-1]
    assert user.split(":")[0] not in ("root", "0"), user
    assert last_index < words.index("ENTRYPOINT") and last_index < words.index("CMD")


def test_dockerfile_installs_through_the_constraints_file(dockerfile):
    runs = [a for w, a in dockerfile if w == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs and all("-c constraints-cpu.txt" in r for r in installs), installs
    assert any(re.search(r'"?\.\[serve\]"?', r) for r in installs), "the serve extra is not installed"
    assert any(w == "COPY" and "constraints-cpu.txt" in a for w, a in dockerfile)
    assert "serve" in PYPROJECT["project"]["optional-dependencies"]


def test_dockerfile_loads_the_default_descriptor_at_build_time(dockerfile):
    final = _final_stage(dockerfile)
    runs = [a for w, a in final if w == "RUN"]
    assert any("load_descriptor()" in r and ".embed(" in r for r in runs), "no build-time load of the descriptor"


def test_dockerfile_serves_on_all_interfaces_with_a_healthcheck(dockerfile):
    final = _final_stage(dockerfile)
    get = {w: a for w, a in final}  # the last of each instruction counts
    assert "/readyz" in get["HEALTHCHECK"] and "python" in get["HEALTHCHECK"]
    assert get["EXPOSE"] == "8000"
    assert get["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(get["ENTRYPOINT"]) == ["vecsim"] and json.loads(get["CMD"]) == ["serve"]
    env = " ".join(a for w, a in final if w == "ENV")
    assert re.search(r"\bVECSIM_HOST=0\.0\.0\.0\b", env)
    # the default index and data folder are relative: they land in the working directory, the volume
    assert json.loads(get["VOLUME"]) == ["/data"] and get["WORKDIR"] == "/data"


def test_the_build_context_holds_what_the_package_needs(dockerfile):
    """.dockerignore lets in what the Dockerfile copies, and pyproject.toml's packages list every
    package of the tree (the image installs the package itself, not an editable link)."""
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {part for w, a in dockerfile if w == "COPY" and "--from" not in a for part in a.split()[:-1]}
    assert copied <= allowed, copied - allowed
    readme = PYPROJECT["project"].get("readme")
    assert readme in copied
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    package_dirs = PYPROJECT["tool"]["setuptools"].get("package-dir", {})
    roots = {"vecsim": ROOT / "vecsim", **{name: ROOT / d for name, d in package_dirs.items()}}
    found = set()
    for name, base in roots.items():
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            if name == "vecsim" and parts and parts[0] in {k.split(".")[1] for k in package_dirs}:
                continue  # a development link to a mapped package
            found.add(".".join([name, *parts]))
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


# --- the environment variables --------------------------------------------------------------------


#: VECSIM_* variables the service reads that are not ServerSettings fields, and the module of each.
OTHER_VARIABLES = {"VECSIM_CONFIG": "vecsim/server/settings.py", "VECSIM_THREADS": "vecsim/descriptors/base.py"}


def _service_variables() -> set[str]:
    fields = _settings_fields()
    for name, module in OTHER_VARIABLES.items():
        assert f'"{name}"' in (ROOT / module).read_text(), f"{module} no longer reads {name}"
    return {f"VECSIM_{f.upper()}" for f in fields} | set(OTHER_VARIABLES)


def test_the_service_reads_every_vecsim_variable_it_is_given(dockerfile):
    """The image's ENV and the service's compose environment set only what `vecsim serve` reads
    (the command line's own variables, such as VECSIM_TOKEN, are not the service's settings)."""
    known = _service_variables()
    given = {a.split("=", 1)[0] for w, args in dockerfile if w == "ENV" for a in shlex.split(args)}
    for stack in SERVICE_STACKS:
        given |= set(_environment(_load(COMPOSE / stack)["services"]["vecsim"]))
    vecsim_vars = {name for name in given if name.startswith("VECSIM_")}
    assert vecsim_vars - known == set(), f"set for the service but not read by it: {sorted(vecsim_vars - known)}"
    assert {"VECSIM_QUEUE", "VECSIM_DATA_DIR", "VECSIM_INDEX", "VECSIM_HOST"} <= vecsim_vars


def test_every_vecsim_variable_named_is_real():
    """Every VECSIM_* name in the compose files, the Dockerfile and docs/deploy.md is a service
    setting or a variable of the command line (cli.py's envvar=...)."""
    cli = set(re.findall(r'envvar="(VECSIM_[A-Z0-9_]+)"', (ROOT / "vecsim" / "cli.py").read_text()))
    known = _service_variables() | cli
    for path in [*COMPOSE_FILES, DOCKERFILE, DOCS]:
        named = set(re.findall(r"\bVECSIM_[A-Z0-9_]+\b", path.read_text()))
        assert named - known == set(), f"{path.name} names {sorted(named - known)}, which nothing reads"


# --- docker compose, where it is installed ----------------------------------------------------------


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    return [docker, "compose"] if probe.returncode == 0 else None


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_docker_compose_config(path, tmp_path):
    cli = _compose_cli()
    if cli is None:
        why = "no docker CLI" if shutil.which("docker") is None else "the docker CLI has no compose plugin"
        pytest.skip(f"docker compose config cannot run here: {why}")
    required = sorted({m.group(1) for s in _strings(_load(path)) for m in VARIABLE.finditer(s) if m.group(2) == ":?"})
    base = {k: v for k, v in os.environ.items() if k not in required}
    base["DOCKER_CONFIG"] = str(tmp_path)  # no user configuration, no credentials
    ok = subprocess.run([*cli, "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60,
                        env={**base, **{name: "x1" * 16 for name in required}})
    assert ok.returncode == 0, ok.stderr
    if required:  # without its secrets, compose refuses the file
        refused = subprocess.run([*cli, "-f", str(path), "config", "-q"], capture_output=True, text=True,
                                 timeout=60, env=base)
        assert refused.returncode != 0 and any(name in refused.stderr for name in required), refused.stderr
