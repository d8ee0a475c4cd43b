"""Benchmark `reconcile plan` and `apply` against the emulator over loopback, and the SDKs.

    python benchmarks/run.py small|large [--platform fabric|qianfan|both] [--latency-ms 20]

For each platform: generate a workspace (emulator state) and a manifest in a temporary folder,
start the emulator as its own process (`python -m reconcile emulator serve --latency-ms N`), then
time whole processes: `reconcile plan` at each `--parallelism` (16 and 64 by default) and
`reconcile apply --auto-approve` of the resulting deletes. Each row shows the wall time, the
requests the emulator received, the process's peak RSS, and the floor the network allows:

    floor = max(requests x latency / parallelism,  chain x latency)

where `chain` is the longest run of requests that cannot overlap (each needs an answer from the
one before: Fabric's first model page, then the rest, then the versions; Qianfan's marker pages
one after another, then the details). wall / floor says how close to the network reconcile is.

The baseline is the same listing done the way a user of the official SDKs writes it: a plain
sequential loop (`huaweicloudsdkdataartsfabric`'s DataArtsFabricClient; `qianfan`'s
`Model.V2.describe_custom_model_sets` + `Model.list`), against the same emulator.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = "ws-bench"
PROVIDER = "bench"
FABRIC_TOKEN = "bench-fabric-token"
FABRIC_AK, FABRIC_SK = "BENCHFABRICAK0000000", "bench-fabric-secret-key"
FABRIC_PROJECT = "bench-project"
QIANFAN_AK, QIANFAN_SK = "bench-qianfan-ak", "bench-qianfan-sk"
#: Requests a listing cannot overlap, in latencies (see the module docstring).
FABRIC_PAGE = 100
QIANFAN_PAGE = 100
SERVICES = 5  # inference services using undeclared versions: blocked in the plan


@dataclass(frozen=True)
class Scenario:
    #: Per workspace.
    models: int
    versions: int
    declared_models: int
    declared_versions: int
    #: Fabric workspaces, each a provider scope of its own (`fleet`).
    workspaces: int = 1


SCENARIOS = {
    "small": Scenario(models=100, versions=10, declared_models=20, declared_versions=5),
    "large": Scenario(models=10_000, versions=10, declared_models=2_000, declared_versions=5),
    # As many versions as `large`, over 200 workspaces of one process (Fabric only).
    "fleet": Scenario(
        models=50, versions=10, declared_models=10, declared_versions=5, workspaces=200
    ),
}


def workspace_names(scenario: Scenario) -> list[tuple[str, str]]:
    """(provider, workspace id) of each workspace of the scenario."""
    if scenario.workspaces == 1:
        return [(PROVIDER, WORKSPACE)]
    return [(f"{PROVIDER}-{k:03d}", f"{WORKSPACE}-{k:03d}") for k in range(scenario.workspaces)]


def write_state(platform: str, scenario: Scenario, path: Path) -> None:
    generate = fabric_state if platform == "fabric" else qianfan_state
    path.write_text(json.dumps(generate(scenario)), encoding="utf-8")


@dataclass(frozen=True)
class Throttle:
    """A platform that allows `rps` requests a second (a token bucket of `burst`)."""

    rps: int
    burst: int
    scenario: Scenario

    @property
    def fault(self) -> str:
        return f"throttle,rps={self.rps},burst={self.burst}"


#: `throttled`: the same plan against platforms that throttle, each big enough that the listing
#: takes about ten seconds at the allowed rate.
THROTTLES = (
    Throttle(100, 20, Scenario(models=1_000, versions=3, declared_models=200, declared_versions=2)),
    Throttle(
        1_000, 20, Scenario(models=10_000, versions=3, declared_models=2_000, declared_versions=2)
    ),
)
#: With --parallelism auto, the floor is computed at this many requests in flight: the issue's
#: reference (the large plan's floor at 64 is 3.16 s).
AUTO_FLOOR_PARALLELISM = 64


# -- the workspace and the manifest -------------------------------------------------------------


def _time(index: int, minutes: int = 0) -> str:
    seconds = index * 60 + minutes
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + seconds)) + ".000Z"


#: The namespace of the benchmark's version ids.
_IDS = uuid.UUID("6f1c2a52-3b7e-4d0c-9a55-1e9d3c6b8f21")


def fabric_state(scenario: Scenario) -> dict[str, Any]:
    models = []
    for i in range(scenario.models):
        versions = [
            {
                # 32 hex digits, as the platform's (and the demo's): not `{i:016x}{j:016x}`, which
                # is all digits and so unlike any real id to a parser.
                "id": uuid.uuid5(_IDS, f"{i}/{j}").hex,
                "name": f"v{j}",
                "description": f"model-{i:05d} v{j}",
                "config": {
                    "llm_model_config": {
                        "base_model_type": "QWEN_2_72B",
                        "model_path": f"obs://bench/model-{i:05d}/v{j}/",
                    }
                },
                "create_time": _time(i, j),
            }
            for j in range(scenario.versions)
        ]
        models.append(
            {
                "id": str(uuid.UUID(int=i + 1)),
                "name": f"model-{i:05d}",
                "description": f"benchmark model {i}",
                "create_time": _time(i),
                "versions": versions,
            }
        )
    # A few services use versions the manifest does not declare: the plan reports them blocked.
    services = [
        {
            "id": f"svc-{k:04d}",
            "source": {
                "id": models[-1 - k]["id"],
                "version_id": models[-1 - k]["versions"][0]["id"],
            },
        }
        for k in range(min(SERVICES, scenario.models))
    ]
    workspace = {"models": models, "service_instances": services}
    return {
        "fabric": {
            "tokens": [FABRIC_TOKEN],
            "access_keys": {FABRIC_AK: FABRIC_SK},
            # One listing per workspace: the same models in each (ids repeat across workspaces,
            # as they may on the platform: an id is unique within its workspace).
            "workspaces": {where: workspace for _, where in workspace_names(scenario)},
        }
    }


def qianfan_state(scenario: Scenario) -> dict[str, Any]:
    sets = []
    for i in range(scenario.models):
        versions = [
            {
                "modelId": f"amv-{i:08x}{j:04x}",
                "modelName": f"v{j}",
                "description": f"model-{i:05d} v{j}",
                "createTime": _time(i, j),
            }
            for j in range(scenario.versions)
        ]
        sets.append(
            {
                "modelSetId": f"am-{i:08x}",
                "modelSetName": f"model-{i:05d}",
                "description": f"benchmark model {i}",
                "createTime": _time(i),
                "versions": versions,
            }
        )
    services = [
        {"serviceId": f"svco-{k:04d}", "modelId": sets[-1 - k]["versions"][0]["modelId"]}
        for k in range(min(SERVICES, scenario.models))
    ]
    return {
        "qianfan": {
            "access_keys": {QIANFAN_AK: QIANFAN_SK},
            "model_sets": sets,
            "services": services,
        }
    }


def manifest(platform: str, scenario: Scenario, url: str) -> str:
    lines = []
    for name, where in workspace_names(scenario):
        if platform == "fabric":
            provider = (
                f'type = "fabric"\nendpoint = "{url}"\nworkspace_id = "{where}"\n'
                'credentials = { token_env = "BENCH_FABRIC_TOKEN" }\n'
            )
        else:
            provider = (
                f'type = "qianfan"\nendpoint = "{url}"\n'
                'credentials = { ak_env = "BENCH_QIANFAN_AK", sk_env = "BENCH_QIANFAN_SK" }\n'
            )
        lines += [f"[providers.{name}]", provider + 'scope = "workspace"', ""]
    lines += ["[policy]", "keep_latest = 0", "max_deletes = 10000000", ""]
    names = ", ".join(f'"v{j}"' for j in range(scenario.declared_versions))
    for name, _ in workspace_names(scenario):
        for i in range(scenario.declared_models):
            lines += [
                "[[models]]",
                f'provider = "{name}"',
                f'name = "model-{i:05d}"',
                f"versions = [{names}]",
                "",
            ]
    return "\n".join(lines)


def chain(platform: str, scenario: Scenario) -> int:
    """Requests of one listing that must follow one another (see the module docstring)."""
    if platform == "fabric":
        # First model page (gives the total), the other pages at once, then the versions.
        return 2 + (scenario.models > FABRIC_PAGE)
    # Marker pages one after another, then the last page's details.
    return -(-scenario.models // QIANFAN_PAGE) + 1


# -- the emulator, over loopback ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def admin(url: str, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(url + "/_emulator/" + path, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def emulator(
    state: Path, port: int, latency_ms: float, log: Path, faults: tuple[str, ...] = ()
) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "reconcile", "emulator", "serve", "--state", str(state)]
    command += ["--port", str(port), "--latency-ms", str(latency_ms), "--no-access-log"]
    for fault in faults:
        command += ["--fault", fault]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the emulator exited: see {log}\n{log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                admin(url, "request-count")
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start within 120 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    platform: str
    what: str
    parallelism: int | str | None
    wall: float
    requests: int
    floor: float | None = None
    peak_mb: float | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def run_process(command: list[str], env: dict[str, str], out: Path) -> tuple[float, int, float]:
    """Run `command`; return (wall seconds, exit code, peak RSS in MB) of that one process."""
    with out.open("wb") as stdout, (out.with_suffix(".err")).open("wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux.
    return wall, process.returncode, usage.ru_maxrss / 1024


def floor(requests: int, latency_ms: float, parallelism: int | str, chained: int) -> float:
    latency = latency_ms / 1000
    in_flight = parallelism if isinstance(parallelism, int) else AUTO_FLOOR_PARALLELISM
    return max(requests * latency / in_flight, chained * latency)


def measure_reconcile(
    args: list[str],
    *,
    url: str,
    env: dict[str, str],
    out: Path,
    expect: tuple[int, ...],
) -> tuple[float, int, float]:
    admin(url, "reset-requests", "POST")
    wall, code, peak = run_process([sys.executable, "-m", "reconcile", *args], env, out)
    if code not in expect:
        err = out.with_suffix(".err").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"reconcile {args[0]} exited {code}:\n{err}")
    return wall, int(admin(url, "request-count")["count"]), peak


def sdk_fabric(url: str) -> int:
    """List every model and version with the official SDK, one call after another."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkdataartsfabric.v1 import (
        DataArtsFabricClient,
        ListModelsRequest,
        ListModelVersionsRequest,
    )

    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    client = (
        DataArtsFabricClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(FABRIC_AK, FABRIC_SK, FABRIC_PROJECT))
        .with_endpoints([url])
        .build()
    )
    versions = 0
    offset = 0
    while True:
        page = client.list_models(
            ListModelsRequest(workspace_id=WORKSPACE, offset=offset, limit=FABRIC_PAGE)
        )
        for model in page.models:
            version_offset = 0
            while True:
                listed = client.list_model_versions(
                    ListModelVersionsRequest(
                        workspace_id=WORKSPACE,
                        model_id=model.id,
                        offset=version_offset,
                        limit=FABRIC_PAGE,
                    )
                )
                versions += len(listed.versions)
                version_offset += FABRIC_PAGE
                if version_offset >= listed.total:
                    break
        offset += FABRIC_PAGE
        if offset >= page.total:
            return versions


def sdk_qianfan(url: str) -> int:
    """List every model set and its versions with the official SDK, one call after another."""
    os.environ["QIANFAN_ACCESS_KEY"] = QIANFAN_AK
    os.environ["QIANFAN_SECRET_KEY"] = QIANFAN_SK
    os.environ["QIANFAN_CONSOLE_API_BASE_URL"] = url
    os.environ["QIANFAN_ENABLE_STREAM"] = "false"
    from qianfan.resources import Model

    versions = 0
    marker: str | None = None
    while True:
        page = Model.V2.describe_custom_model_sets(marker=marker, max_keys=QIANFAN_PAGE)
        result = page["result"]
        for model_set in result["customModelSetList"]:
            detail = Model.list(model_id=model_set["modelSetId"])
            versions += len(detail["result"]["modelVersionList"])
        info = result["pageInfo"]
        if not info["isTruncated"]:
            return versions
        marker = info["nextMarker"]


SDK: dict[str, Callable[[str], int]] = {"fabric": sdk_fabric, "qianfan": sdk_qianfan}


@dataclass(frozen=True)
class Workspace:
    """A generated workspace (emulator state) and its manifest, in `folder`."""

    folder: Path
    state_file: Path
    manifests: Path
    port: int
    env: dict[str, str]

    @classmethod
    def make(cls, platform: str, scenario: Scenario, folder: Path) -> Workspace:
        folder.mkdir(parents=True)
        state_file = folder / "state.json"
        # Generated in a process of its own: a child's peak RSS starts at its parent's (fork
        # copies it, and exec keeps the high-water mark), so a benchmark that built the large
        # state itself reported it in every command's peak (`validate`: 174 MB, its own 46).
        spawn = multiprocessing.get_context("spawn")
        writer = spawn.Process(target=write_state, args=(platform, scenario, state_file))
        writer.start()
        writer.join()
        if writer.exitcode != 0:
            raise RuntimeError(f"generating the {platform} state failed ({writer.exitcode})")
        port = free_port()
        manifests = folder / "manifests"
        manifests.mkdir()
        text = manifest(platform, scenario, f"http://127.0.0.1:{port}")
        (manifests / "bench.toml").write_text(text, encoding="utf-8")
        env = {
            **os.environ,
            "BENCH_FABRIC_TOKEN": FABRIC_TOKEN,
            "BENCH_QIANFAN_AK": QIANFAN_AK,
            "BENCH_QIANFAN_SK": QIANFAN_SK,
            "NO_COLOR": "1",
        }
        return cls(folder, state_file, manifests, port, env)


def bench_platform(
    name: str, platform: str, options: argparse.Namespace, folder: Path
) -> list[Row]:
    scenario = SCENARIOS[name]
    workspace = Workspace.make(platform, scenario, folder)
    state_file, manifests, port, env = (
        workspace.state_file,
        workspace.manifests,
        workspace.port,
        workspace.env,
    )
    state_dir = folder / "state"
    latency = options.latency_ms
    chained = chain(platform, scenario)
    rows: list[Row] = []

    def row(what: str, parallelism: int | str | None, wall: float, requests: int, **kw: Any) -> Row:
        made = Row(name, platform, what, parallelism, wall, requests, **kw)
        rows.append(made)
        print(f"  {platform:8} {what:12} p={parallelism or '-':<3} {wall:8.2f} s", flush=True)
        return made

    wall, code, peak = run_process(
        [sys.executable, "-m", "reconcile", "validate", str(manifests)], env, folder / "validate"
    )
    if code != 0:
        raise RuntimeError((folder / "validate.err").read_text())
    row("validate", None, wall, 0, peak_mb=peak, note="manifest load, no network")

    with emulator(state_file, port, latency, folder / "emulator.log") as url:
        # Untimed: a fresh emulator answers its first listing slower (about 10% on `large`),
        # which made whichever parallelism was measured first look worse than it is.
        measure_reconcile(
            ["plan", str(manifests), "-q", "--state-dir", str(state_dir)],
            url=url,
            env=env,
            out=folder / "warm-up",
            expect=(0, 2),
        )
        for parallelism in options.parallelism:
            common = ["--parallelism", str(parallelism), "-q", "--state-dir", str(state_dir)]
            out = folder / f"plan-{parallelism}"
            wall, requests, peak = measure_reconcile(
                ["plan", str(manifests), *common, "--detailed-exitcode"],
                url=url,
                env=env,
                out=out,
                expect=(0, 2),
            )
            lines = out.read_text(encoding="utf-8").splitlines()
            summary = next((line for line in lines if line.startswith("Plan:")), "")
            row(
                "plan",
                parallelism,
                wall,
                requests,
                floor=floor(requests, latency, parallelism, chained),
                peak_mb=peak,
                note=summary,
            )
        if not options.no_sdk and scenario.workspaces == 1:
            admin(url, "reset-requests", "POST")
            started = time.perf_counter()
            versions = SDK[platform](url)
            wall = time.perf_counter() - started
            requests = int(admin(url, "request-count")["count"])
            expected = scenario.models * scenario.versions
            if versions != expected:
                raise RuntimeError(f"the SDK listing found {versions} versions, not {expected}")
            row("SDK listing", 1, wall, requests, floor=requests * latency / 1000)
        parallelism = options.parallelism[0]
        common = ["--parallelism", str(parallelism), "-q", "--state-dir", str(state_dir)]
        wall, requests, peak = measure_reconcile(
            ["apply", str(manifests), *common, "--auto-approve", "--max-deletes", "10000000"],
            url=url,
            env=env,
            out=folder / "apply",
            expect=(0,),
        )
        # Two listings (plan, then the re-check before deleting), then versions, then models.
        row(
            "apply",
            parallelism,
            wall,
            requests,
            floor=floor(requests, latency, parallelism, 2 * chained + 2),
            peak_mb=peak,
            note=(folder / "apply").read_text(encoding="utf-8").strip().splitlines()[-1],
        )
    return rows


def bench_throttled(platform: str, options: argparse.Namespace, folder: Path) -> list[Row]:
    """`plan --parallelism auto` against a platform that throttles, and the same plan without
    the throttle: the rate achieved, the 429s received, and whether the plans are the same."""
    rows: list[Row] = []
    for throttle in THROTTLES:
        workspace = Workspace.make(platform, throttle.scenario, folder / f"{throttle.rps}")
        digests: dict[str, str] = {}
        for label, faults in (("unthrottled", ()), (f"{throttle.rps}/s", (throttle.fault,))):
            run = workspace.folder / label.replace("/", "-")
            with emulator(
                workspace.state_file,
                workspace.port,
                options.latency_ms,
                run.with_suffix(".log"),
                faults,
            ) as url:
                plan_file = run.with_suffix(".plan.json")
                args = ["plan", str(workspace.manifests), "-q", "--detailed-exitcode"]
                args += ["--state-dir", str(workspace.folder / "state"), "-o", str(plan_file)]
                wall, requests, peak = measure_reconcile(
                    args, url=url, env=workspace.env, out=run, expect=(0, 2)
                )
                records = admin(url, "requests")
            digests[label] = json.loads(plan_file.read_text(encoding="utf-8"))["plan_digest"]
            rows.append(throttled_row(platform, label, throttle, wall, requests, peak, records))
            print(f"  {platform:8} {label:12} p=auto {wall:8.2f} s", flush=True)
        same = len(set(digests.values())) == 1
        rows[-1].note += f"; plan identical to the unthrottled one: {'yes' if same else 'NO'}"
    return rows


def throttled_row(
    platform: str,
    label: str,
    throttle: Throttle,
    wall: float,
    requests: int,
    peak: float,
    records: list[dict[str, Any]],
) -> Row:
    throttled = sum(1 for r in records if r["status"] == 429)
    answered = [r for r in records if r["status"] == 200]
    failed = len(records) - throttled - len(answered)
    times = [r["time"] for r in records]
    window = max(times) - min(times) if len(times) > 1 else 0.0
    rate = len(answered) / window if window else 0.0
    note = f"{label}: 429s {throttled} ({throttled / max(requests, 1):.1%}), failed {failed}"
    if label != "unthrottled":
        note += f", achieved {rate:.0f}/s = {rate / throttle.rps:.0%} of {throttle.rps}/s"
    return Row(
        "throttled",
        platform,
        f"plan {label}",
        "auto",
        wall,
        requests,
        peak_mb=peak,
        note=note,
        extra={"429s": throttled, "failed": failed, "rate": rate},
    )


# -- the table ------------------------------------------------------------------------------------


def table(rows: list[Row], latency_ms: float) -> str:
    header = (
        "scenario",
        "platform",
        "command",
        "par",
        "wall s",
        "requests",
        "floor s",
        "wall/floor",
        "peak MB",
        "SDK s",
        "SDK/wall",
    )
    body = []
    sdk = {(r.scenario, r.platform): r for r in rows if r.what == "SDK listing"}
    for r in rows:
        baseline = sdk.get((r.scenario, r.platform)) if r.what == "plan" else None
        body.append(
            (
                r.scenario,
                r.platform,
                r.what,
                str(r.parallelism or "-"),
                f"{r.wall:.2f}",
                str(r.requests) if r.requests else "-",
                f"{r.floor:.2f}" if r.floor else "-",
                f"{r.wall / r.floor:.2f}" if r.floor else "-",
                f"{r.peak_mb:.0f}" if r.peak_mb else "-",
                f"{baseline.wall:.1f}" if baseline else "-",
                f"{baseline.wall / r.wall:.1f}x" if baseline else "-",
            )
        )
    widths = [max(len(str(cells[i])) for cells in [header, *body]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if i < 3 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(header), "  ".join("-" * width for width in widths)]
    out += [line(cells) for cells in body]
    out.append("")
    out.append(
        f"latency {latency_ms:g} ms per request; floor = max(requests x latency / parallelism, "
        "chain x latency); SDK = the same listing by a sequential loop over the official SDK."
    )
    for r in rows:
        if r.note:
            out.append(f"{r.scenario}/{r.platform}/{r.what} p={r.parallelism or '-'}: {r.note}")
    return "\n".join(out)


def compile_package() -> None:
    """reconcile's bytecode, written as an install writes it: under PYTHONDONTWRITEBYTECODE
    (set in some CI images) an editable install has none, and every command timed compiled its
    hundred modules again (0.2-0.3 s of a plan's CPU)."""
    import reconcile

    compileall.compile_dir(Path(reconcile.__file__).parent, quiet=1)


def cpu_gauge(rounds: int = 2_000_000, tries: int = 3) -> float:
    """Seconds this machine takes for a fixed pure-Python loop, now (the best of `tries`). A
    shared machine's speed drifts (the same plan took 10.4 s and 17.3 s an hour apart, nothing
    else running), so a table's figures compare with another's only where gauges are alike."""
    best = math.inf
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for number in range(rounds):
            total += number
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=[*sorted(SCENARIOS), "throttled"])
    parser.add_argument("--platform", choices=["fabric", "qianfan", "both"], default="both")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--parallelism",
        type=lambda text: [part if part == "auto" else int(part) for part in text.split(",")],
        default=["auto", 16, 64],
        help="comma-separated values (numbers or auto) for plan; apply runs at the first "
        "[auto,16,64]",
    )
    parser.add_argument("--no-sdk", action="store_true", help="skip the official-SDK baseline")
    parser.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    options = parser.parse_args(argv)
    platforms = ["fabric", "qianfan"] if options.platform == "both" else [options.platform]
    if options.scenario == "fleet":
        platforms = ["fabric"]  # many workspaces are a Fabric notion
    folder = options.keep or Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    rows: list[Row] = []
    compile_package()
    gauge_before = cpu_gauge()
    try:
        for platform in platforms:
            print(f"{options.scenario}: {platform}", flush=True)
            if options.scenario == "throttled":
                rows += bench_throttled(platform, options, folder / platform)
            else:
                rows += bench_platform(options.scenario, platform, options, folder / platform)
    finally:
        if options.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print()
    print(table(rows, options.latency_ms))
    print(
        f"machine gauge (a 2,000,000-step Python loop): {gauge_before:.2f} s before, "
        f"{cpu_gauge():.2f} s after; compare tables only where the gauges are alike"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
