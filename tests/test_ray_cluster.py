"""A real Ray cluster: a head and a worker node started here, the run stage against it, results identical to a local run.

``--address ray://...`` was documented but only ``ray.init()`` in-process was tested.
This test starts its own two-node cluster on this machine (measured with ray 2.6.3:
the client-server port must sit outside the worker-port ranges, and forcing
``--node-ip-address 127.0.0.1`` broke the client server, so it is not forced), runs the
run stage's library entry point (``run_scenario``, what ``cdrbench run --address`` calls)
on a built scenario once locally and once through ``ray://``, and compares every record.
Both nodes are started with ``--block`` as child processes, so the test stops exactly
the cluster it started (``ray stop`` would end every Ray process of the machine).

Marker ``built``: it reads the pipeline's built douban-m2b scenario and features.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.config import paths

pytestmark = pytest.mark.built

SCENARIO = "douban-m2b"
MODELS = ["popularity", "collopop-artist", "userknn"]
HEAD_PORT, CLIENT_PORT = 6390, 10001

DRIVER = r"""
import json, sys
from pathlib import Path
from benchmark.config import paths
from benchmark.config.params import load_params
from benchmark.experiment.runner import run_scenario
import ray
runs, address, models = Path(sys.argv[1]), (sys.argv[2] or None), sys.argv[3].split(",")
params = load_params(paths.PARAMS)
records = run_scenario(sys.argv[4], params, runs_root=runs, address=address, only=models)
nodes = sorted({n["NodeID"] for n in ray.nodes() if n["Alive"]})
ray.shutdown()
print(json.dumps({"n_records": len(records), "nodes": len(nodes)}))
"""


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _ray_bin() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else (shutil.which("ray") or "ray")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The local run, done before the cluster exists (measured: a local Ray started while
    the test cluster was up left the cluster's client server unable to start a driver)."""
    if not (paths.SCENARIOS / SCENARIO / "meta.json").is_file():
        pytest.fail(f"{SCENARIO} is not built: run `dvc repro` first (this is a built-output test)")
    tmp = tmp_path_factory.mktemp("ray")
    info = _drive(tmp / "local", None, tmp / "local.log")
    return tmp, info


@pytest.fixture(scope="module")
def cluster(local_run):
    if not (_free(HEAD_PORT) and _free(CLIENT_PORT)):
        pytest.skip(f"ports {HEAD_PORT}/{CLIENT_PORT} are taken by another Ray cluster on this machine")
    tmp = local_run[0]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",  # the venv first: Ray starts helper processes by name
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    # Ray's default temp dir: the client server's per-driver processes find their session
    # through /tmp/ray/session_latest whatever --temp-dir says (measured with ray 2.6.3: with
    # a private --temp-dir the driver's server failed to start), so this cluster must be
    # the latest session there while the test runs.
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    head = subprocess.Popen(
        [_ray_bin(), "start", "--head", "--port", str(HEAD_PORT), "--ray-client-server-port", str(CLIENT_PORT),
         "--min-worker-port", "20000", "--max-worker-port", "20999", "--include-dashboard=false",
         *common],
        stdout=open(tmp / "head.log", "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    procs = [head]
    try:
        deadline = time.time() + 120
        while _free(CLIENT_PORT):
            if head.poll() is not None or time.time() > deadline:
                pytest.fail(f"Ray head did not start: {(tmp / 'head.log').read_text()[-2000:]}")
            time.sleep(1)
        worker = subprocess.Popen(
            [_ray_bin(), "start", "--address", f"127.0.0.1:{HEAD_PORT}", "--min-worker-port", "21000",
             "--max-worker-port", "21999", *common],
            stdout=open(tmp / "worker.log", "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        procs.append(worker)
        time.sleep(5)
        yield f"ray://127.0.0.1:{CLIENT_PORT}", tmp
    finally:
        for p in reversed(procs):  # SIGTERM to the whole session of each `ray start --block`: its node only
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)


def _drive(runs: Path, address: str | None, log: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", DRIVER, str(runs), address or "", ",".join(MODELS), SCENARIO],
                         capture_output=True, text=True, cwd=paths.ROOT, timeout=1800)
    log.write_text(out.stdout + out.stderr)
    assert out.returncode == 0, f"run against {address or 'local'} failed: {out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def _records(runs: Path) -> dict:
    out = {}
    for rec in sorted((runs / SCENARIO).glob("*/s*_f*/record.json")):
        r = json.loads(rec.read_text())
        pu = pd.read_parquet(rec.parent / "per_user.parquet")
        tk = pd.read_parquet(rec.parent / "topk.parquet")
        out[(r["model"], r["seed"], r["fold"])] = (r["config_hash"], r["tuning"].get("chosen_config"), pu, tk)
    return out


def test_cluster_run_matches_the_local_run(local_run, cluster):
    address, tmp = cluster
    local, remote = tmp / "local", tmp / "cluster"
    a = local_run[1]
    b = _drive(remote, address, tmp / "cluster.log")
    assert b["nodes"] == 2, f"the cluster run saw {b['nodes']} live node(s), expected the head and the worker"
    assert a["n_records"] == b["n_records"] > 0
    ra, rb = _records(local), _records(remote)
    assert sorted(ra) == sorted(rb) and {m for m, _, _ in ra} == set(MODELS)
    for key in ra:
        ha, ca, pua, tka = ra[key]
        hb, cb, pub, tkb = rb[key]
        assert (ha, ca) == (hb, cb), f"{key}: tuned config differs between local and cluster"
        pd.testing.assert_frame_equal(pua, pub, obj=f"per-user metrics of {key}")
        pd.testing.assert_frame_equal(tka, tkb, obj=f"top-K lists of {key}")
