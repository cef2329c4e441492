"""Benchmark async_job_save and async_job_load against the cheapest playbook doing the same work.

Run from the repository root with the virtualenv's Python (``make bench``)::

    .venv/bin/python bench/bench.py [--hosts 40] [--forks 10] [--repeat 3] [--backend all]

Each scenario is its own ansible-playbook run over N local hosts. The runs are
interleaved round-robin, and the median of each scenario is compared with its backend's
floor: for the filesystem backend one ansible.builtin.copy per host of a small JSON file,
for the OCI backend one delegated command per host running a bare ``oci os object head``
against a local Object Storage server (tests/support/oci_server.py) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.oci_env import cli_environment, create_config  # noqa: E402
from tests.support.oci_server import OCIServer  # noqa: E402

BIN = Path(sys.executable).parent
PLAY_NAME = "async_job bench"
JOB_NAME = "bench_job"
BUCKET = "bench"
# Highest acceptable ratio of a scenario's median wall time to its backend's floor.
TARGETS = {"first save": 1.3, "re-save": 1.1, "load": 0.3, "oci save": 1.5, "oci load": 1.2}
# The scenarios of each backend in the order of one round; the floor comes first.
SUITES = {
    "filesystem": ("floor", "first save", "re-save", "load"),
    "oci": ("oci floor", "oci save", "oci load"),
}
# An OCI round saves first, so the floor's head and the load find the objects it stored.
RUN_ORDER = {"filesystem": SUITES["filesystem"], "oci": ("oci save", "oci floor", "oci load")}
RECAP_CHANGED = re.compile(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)", re.MULTILINE)


def playbooks() -> dict[str, list[dict]]:
    """The playbook of each scenario; the directory to use comes as bench_dir."""
    floor = {
        "name": "Write a small JSON file per host",
        "ansible.builtin.copy": {
            "content": "{{ bench_record | to_nice_json }}\n",
            "dest": "{{ bench_dir }}/{{ inventory_hostname }}.json",
            "mode": "0600",
        },
        "delegate_to": "localhost",
        "vars": {
            "bench_record": {
                "job_name": JOB_NAME,
                "host": "{{ inventory_hostname }}",
                "ansible_job_id": "{{ bench_job_id }}",
                "save_time": "2000-01-01T00:00:00Z",
                "metadata": {},
            }
        },
    }
    save = {
        "name": "Save the job id of every host",
        "ansible.builtin.include_role": {"name": "rstyczynski.ansible.async_job_save"},
        "vars": {
            "async_job_save_job_name": JOB_NAME,
            "async_job_save_ansible_job_id": "{{ bench_job_id }}",
            "async_job_save_host": "{{ inventory_hostname }}",
            "async_job_save_state_dir": "{{ bench_dir }}",
        },
    }
    load = {
        "name": "Load the job id of every host",
        "ansible.builtin.include_role": {"name": "rstyczynski.ansible.async_job_load"},
        "vars": {
            "async_job_load_job_name": JOB_NAME,
            "async_job_load_state_dir": "{{ bench_dir }}",
        },
    }
    # Run once for the whole batch, in an untimed run after each timed load (see measure).
    check = {
        "name": "Check that every host found its saved job id",
        "ansible.builtin.assert": {
            "that": [
                "ansible_play_hosts | map('extract', hostvars, 'async_job_load_ansible_job_id') | list"
                " == ansible_play_hosts | map('extract', hostvars, 'bench_job_id') | list",
            ],
            "quiet": True,
        },
        "run_once": True,
    }
    oci_vars = {
        "backend": "oci",
        "oci_bucket": BUCKET,
        "oci_namespace": "{{ bench_namespace }}",
        "oci_config_file": "{{ bench_oci_config }}",
        "oci_endpoint": "{{ bench_oci_endpoint }}",
        "oci_prefix": "{{ bench_dir | basename }}/",
    }
    oci_floor = {
        "name": "Ask for the head of each host's object",
        "ansible.builtin.command": {
            "argv": [
                "oci",
                "--config-file",
                "{{ bench_oci_config }}",
                "--endpoint",
                "{{ bench_oci_endpoint }}",
                "os",
                "object",
                "head",
                "--namespace-name",
                "{{ bench_namespace }}",
                "--bucket-name",
                BUCKET,
                "--name",
                "{{ bench_dir | basename }}/{{ inventory_hostname }}/" + PLAY_NAME + "/" + JOB_NAME + ".json",
            ]
        },
        "delegate_to": "localhost",
        "changed_when": False,
    }
    oci_save = {**save, "vars": {**save["vars"], **{f"async_job_save_{k}": v for k, v in oci_vars.items()}}}
    oci_load = {**load, "vars": {**load["vars"], **{f"async_job_load_{k}": v for k, v in oci_vars.items()}}}
    tasks = {"floor": [floor], "first save": [save], "re-save": [save], "load": [load]}
    tasks.update({"oci floor": [oci_floor], "oci save": [oci_save], "oci load": [oci_load]})
    tasks.update({f"{name} check": [*tasks[name], check] for name in ("load", "oci load")})
    return {name: [{"name": PLAY_NAME, "hosts": "all", "gather_facts": False, "tasks": t}] for name, t in tasks.items()}


def setup(work: Path, hosts: int, forks: int, tasks: bool = False) -> None:
    """Write the inventory, ansible.cfg and the playbooks into the scratch directory."""
    width = max(2, len(str(hosts)))
    inventory = {
        "all": {
            "hosts": {f"h{n:0{width}d}": {"bench_job_id": f"j{n}.{os.getpid()}"} for n in range(1, hosts + 1)},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
            },
        }
    }
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    config = f"[defaults]\ninventory = {work / 'inventory.yml'}\nforks = {forks}\n"
    if tasks:
        config += f"callbacks_enabled = task_times\ncallback_plugins = {Path(__file__).parent / 'callback_plugins'}\n"
    (work / "ansible.cfg").write_text(config)
    for name, book in playbooks().items():
        (work / playbook_file(name)).write_text(yaml.safe_dump(book, sort_keys=False))


def playbook_file(scenario: str) -> str:
    return scenario.replace(" ", "_") + ".yml"


def run(work: Path, env: dict, scenario: str, bench_dir: Path, *opts: str, oci: dict | None = None) -> dict:
    """Run one scenario: wall seconds, CPU seconds of the children, changed count."""
    extra = json.dumps({"bench_dir": str(bench_dir), **(oci or {})})
    cmd = [str(BIN / "ansible-playbook"), playbook_file(scenario), "-e", extra, *opts]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        sys.exit(f"bench: {scenario}: ansible-playbook failed (rc={proc.returncode})")
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
    changed = sum(int(c) for c in RECAP_CHANGED.findall(proc.stdout))
    tasks = [line.split(None, 1)[1] for line in proc.stdout.splitlines() if line.startswith("task_times ")]
    return {"wall_s": wall, "cpu_s": cpu, "changed": changed, "tasks": tasks}


def measure(args: argparse.Namespace, env: dict, backends: list[str]) -> dict[str, list[dict]]:
    """All runs, round-robin within each backend: one round of its scenarios, then again."""
    samples: dict[str, list[dict]] = {name: [] for b in backends for name in SUITES[b]}
    with tempfile.TemporaryDirectory(prefix="async_job_bench-") as tmp, OCIServer(buckets=[BUCKET]) as server:
        work = Path(tmp)
        setup(work, args.hosts, args.forks, args.tasks)
        config = create_config(work / "oci")
        server.add_key(config.profiles["DEFAULT"].key_id, config.profiles["DEFAULT"].public_pem)
        oci = {"bench_namespace": server.namespace, "bench_oci_config": str(config.path)}
        oci["bench_oci_endpoint"] = server.endpoint
        env = {**cli_environment(work / "home", env), "ANSIBLE_CONFIG": str(work / "ansible.cfg")}
        warmup = work / "warmup"
        warmup.mkdir()
        run(work, env, "floor", warmup, "--limit", "all[0]")  # untimed, fills caches
        for rep in range(1, args.repeat + 1):
            for backend in backends:
                for scenario in RUN_ORDER[backend]:
                    # The floor copies into a fresh directory; the save and load of a round
                    # share theirs, which the first save finds empty (or its prefix, for OCI).
                    bench_dir = work / (f"floor{rep}" if scenario == "floor" else f"{backend}{rep}")
                    if scenario == "floor":
                        bench_dir.mkdir()
                    sample = run(work, env, scenario, bench_dir, oci=oci)
                    samples[scenario].append(sample)
                    if scenario.endswith("load"):
                        # Untimed: the same load again, then an assert that every host found its id.
                        run(work, env, f"{scenario} check", bench_dir, oci=oci)
                    print(f"  run {rep}/{args.repeat} {scenario:<10} {sample['wall_s']:6.2f} s", file=sys.stderr)
                    for line in sample["tasks"]:
                        print(f"      {line}", file=sys.stderr)
    return samples


def summarize(samples: dict[str, list[dict]]) -> list[dict]:
    rows = []
    floors = {}
    for name, runs in samples.items():
        rows.append(
            {
                "scenario": name,
                "wall_s": statistics.median(r["wall_s"] for r in runs),
                "cpu_s": statistics.median(r["cpu_s"] for r in runs),
                "changed": max(r["changed"] for r in runs),
                "target": TARGETS.get(name),
                "samples": runs,
            }
        )
    for row in rows:
        if row["scenario"].endswith("floor"):
            floors = row
        row["wall_ratio"] = row["wall_s"] / floors["wall_s"]
        row["cpu_ratio"] = row["cpu_s"] / floors["cpu_s"]
        target = row["target"]
        row["pass"] = None if target is None else row["wall_ratio"] <= target
    return rows


def print_table(rows: list[dict], meta: dict) -> None:
    print(
        f"ansible-core {meta['ansible_core']}, hosts={meta['hosts']}, "
        f"forks={meta['forks']}, repeat={meta['repeat']} (medians)"
    )
    header = (
        f"{'scenario':<11} {'wall s':>7} {'CPU s':>7} {'wall/floor':>10} "
        f"{'CPU/floor':>9} {'target':>7}  result  changed"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        target = "-" if row["target"] is None else f"<={row['target']}x"
        verdict = {None: "-", True: "PASS", False: "MISS"}[row["pass"]]
        print(
            f"{row['scenario']:<11} {row['wall_s']:7.2f} {row['cpu_s']:7.2f} "
            f"{row['wall_ratio']:9.2f}x {row['cpu_ratio']:8.2f}x {target:>7}  "
            f"{verdict:<6}  {row['changed']:>7}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=40, help="local hosts (40)")
    parser.add_argument("--forks", type=int, default=10, help="ansible forks (10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (3)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a MISS")
    parser.add_argument("--backend", choices=["all", *SUITES], default="all", help="which backend (all)")
    parser.add_argument("--tasks", action="store_true", help="also print the wall time of each task of each run")
    args = parser.parse_args()
    if min(args.hosts, args.forks, args.repeat) < 1:
        parser.error("--hosts, --forks and --repeat must be at least 1")

    default_path = str(REPO / ".ansible" / "collections")
    collections = os.environ.get("ANSIBLE_COLLECTIONS_PATH", default_path)
    # No ANSIBLE_* setting of the caller leaks in: the scratch ansible.cfg decides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR="1")
    # The roles run the oci CLI found on PATH: the one installed beside this Python.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    version = subprocess.run(
        [str(BIN / "ansible-playbook"), "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    meta = {
        "ansible_core": re.search(r"core ([\w.]+)", version).group(1),
        "hosts": args.hosts,
        "forks": args.forks,
        "repeat": args.repeat,
    }

    backends = list(SUITES) if args.backend == "all" else [args.backend]
    rows = summarize(measure(args, env, backends))
    print_table(rows, meta)
    resave_changed = sum(row["changed"] for row in rows if row["scenario"] == "re-save")
    if resave_changed:
        print(f"warning: re-save reported changed={resave_changed}, expected 0")
    if args.json:
        figures = {**meta, "scenarios": rows}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    missed = resave_changed > 0 or any(row["pass"] is False for row in rows)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
