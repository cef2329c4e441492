"""Benchmark async_job_save and async_job_load against the cheapest playbook doing the same work.

Run from the repository root with the virtualenv's Python (``make bench``)::

    .venv/bin/python bench/bench.py [--hosts 40] [--forks 10] [--repeat 3] [--backend all]
    .venv/bin/python bench/bench.py --scaling        # 10, 40 and 160 hosts, both backends
    .venv/bin/python bench/bench.py --listing        # cost of unrelated records under the prefix

Each scenario is its own ansible-playbook run over N local hosts. The runs are
interleaved round-robin, and the median of each scenario is compared with its backend's
floor: for the filesystem backend one ansible.builtin.copy per host of a small JSON file,
for the OCI backend one delegated command per host running a bare ``oci os object head``
against a local Object Storage server (tests/support/oci_server.py) on 127.0.0.1. The
bucket of the OCI scenarios also holds unrelated records under the same prefix, and every
oci process of a run is counted by a wrapper first on the PATH.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import shlex
import shutil
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
# Unrelated records in the bucket of every OCI scenario, and in the listing measurement.
UNRELATED = 1500
LISTING_UNRELATED = 10000
SCALING_HOSTS = (10, 40, 160)
# Highest acceptable ratio of a scenario's median wall time to its backend's floor.
TARGETS = {
    "first save": 1.3,
    "re-save": 1.1,
    "load": 0.3,
    "oci save": 0.8,
    "oci re-save": 0.4,
    "oci load": 0.4,
}
# The scenarios of each backend in the order of one round; the floor comes first.
SUITES = {
    "filesystem": ("floor", "first save", "re-save", "load"),
    "oci": ("oci floor", "oci save", "oci re-save", "oci load"),
}
# An OCI round saves first, so the floor's head, the re-save and the load find the objects it stored.
RUN_ORDER = {"filesystem": SUITES["filesystem"], "oci": ("oci save", "oci floor", "oci re-save", "oci load")}
# Steady state: a save of the same ids again must change nothing.
RESAVES = ("re-save", "oci re-save")
RECAP_CHANGED = re.compile(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)", re.MULTILINE)
# An oci first on the PATH of the runs: it notes its arguments (separated by US, one process a
# line, written at once so that concurrent processes do not mix their lines) and runs the real CLI.
WRAPPER = """#!/bin/sh
line=$(printf '%s\\037' "$@")
printf '%s\\n' "$line" >> {log}
exec {real} "$@"
"""


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
        "oci_bucket": "{{ bench_bucket }}",
        "oci_namespace": "{{ bench_namespace }}",
        "oci_config_file": "{{ bench_oci_config }}",
        "oci_endpoint": "{{ bench_oci_endpoint }}",
        "oci_prefix": "{{ bench_prefix }}",
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
                "{{ bench_bucket }}",
                "--name",
                "{{ bench_prefix }}{{ inventory_hostname }}/" + PLAY_NAME + "/" + JOB_NAME + ".json",
            ]
        },
        "delegate_to": "localhost",
        "changed_when": False,
    }
    oci_save = {**save, "vars": {**save["vars"], **{f"async_job_save_{k}": v for k, v in oci_vars.items()}}}
    oci_load = {**load, "vars": {**load["vars"], **{f"async_job_load_{k}": v for k, v in oci_vars.items()}}}
    tasks = {"floor": [floor], "first save": [save], "re-save": [save], "load": [load]}
    tasks.update({"oci floor": [oci_floor], "oci save": [oci_save], "oci re-save": [oci_save], "oci load": [oci_load]})
    tasks.update({f"{name} check": [*tasks[name], check] for name in ("load", "oci load")})
    return {name: [{"name": PLAY_NAME, "hosts": "all", "gather_facts": False, "tasks": t}] for name, t in tasks.items()}


def playbook_file(scenario: str) -> str:
    return scenario.replace(" ", "_") + ".yml"


def host_names(hosts: int) -> list[str]:
    width = max(2, len(str(hosts)))
    return [f"h{n:0{width}d}" for n in range(1, hosts + 1)]


def unrelated_records(prefix: str, hosts: list[str], count: int) -> dict[str, bytes]:
    """Records of other playbooks, named so that the listing of the batch's prefix sees them.

    Half belong to the bench's hosts under other playbook names, half to other hosts whose
    names begin with a bench host's (``h01-00001``, ...). Every name lies below the longest
    prefix common to the batch's objects, so a bulk-download of the batch lists them all.
    """
    records = {}
    for n in range(count):
        host = hosts[(n // 2) % len(hosts)]
        if n % 2 == 0:
            play = f"other play {n // 2 // len(hosts):04d}"
        else:
            host, play = f"{host}-{n // 2:05d}", f"other play {n % 7}"
        record = {
            "job_name": "other_job",
            "host": host,
            "ansible_job_id": f"j{n}.1",
            "save_time": "2000-01-01T00:00:00Z",
            "metadata": {},
        }
        records[f"{prefix}{host}/{play}/other_job.json"] = (json.dumps(record, indent=4) + "\n").encode()
    return records


def fill(server: OCIServer, records: dict[str, bytes], bucket: str = BUCKET) -> None:
    for name, data in records.items():
        server.put_object(bucket, name, data, content_type="application/json")


class Bench:
    """A scratch directory with the playbooks, an Object Storage server and the oci wrapper."""

    def __init__(self, work: Path, server: OCIServer, env: dict, forks: int, tasks: bool = False):
        self.work = work
        self.server = server
        config = f"[defaults]\nforks = {forks}\n"
        if tasks:
            plugins = Path(__file__).parent / "callback_plugins"
            config += f"callbacks_enabled = task_times\ncallback_plugins = {plugins}\n"
        (work / "ansible.cfg").write_text(config)
        for name, book in playbooks().items():
            (work / playbook_file(name)).write_text(yaml.safe_dump(book, sort_keys=False))
        oci_config = create_config(work / "oci")
        profile = oci_config.profiles["DEFAULT"]
        server.add_key(profile.key_id, profile.public_pem)
        self.oci = {
            "bench_namespace": server.namespace,
            "bench_oci_config": str(oci_config.path),
            "bench_oci_endpoint": server.endpoint,
        }
        real = self.real_oci = shutil.which("oci", path=env["PATH"])
        if real is None:
            sys.exit("bench: the oci CLI is not installed")
        wrapper_dir = work / "wrapper"
        wrapper_dir.mkdir()
        self.calls_log = work / "oci_calls.log"
        wrapper = wrapper_dir / "oci"
        wrapper.write_text(WRAPPER.format(log=shlex.quote(str(self.calls_log)), real=shlex.quote(real)))
        wrapper.chmod(0o755)
        self.env = {**cli_environment(work / "home", env), "ANSIBLE_CONFIG": str(work / "ansible.cfg")}
        self.env["PATH"] = f"{wrapper_dir}{os.pathsep}{self.env['PATH']}"
        self.inventories: dict[int, Path] = {}

    def inventory(self, hosts: int) -> Path:
        """The inventory of N local hosts (written once per size)."""
        if hosts not in self.inventories:
            inventory = {
                "all": {
                    "hosts": {
                        name: {"bench_job_id": f"j{n}.{os.getpid()}"} for n, name in enumerate(host_names(hosts), 1)
                    },
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                }
            }
            path = self.work / f"inventory-{hosts}.yml"
            path.write_text(yaml.safe_dump(inventory, sort_keys=False))
            self.inventories[hosts] = path
        return self.inventories[hosts]

    def oci_calls(self) -> list[list[str]]:
        """The arguments of every oci process since the last run started."""
        if not self.calls_log.exists():
            return []
        return [line.split("\x1f")[:-1] for line in self.calls_log.read_text().splitlines()]

    def run(self, scenario: str, hosts: int, bench_dir: Path, prefix: str = "", bucket: str = BUCKET) -> dict:
        """Run one scenario: wall seconds, CPU seconds of the children, changed count, oci processes."""
        extra = json.dumps({"bench_dir": str(bench_dir), "bench_prefix": prefix, "bench_bucket": bucket, **self.oci})
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory(hosts)), playbook_file(scenario), "-e", extra]
        self.calls_log.unlink(missing_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=self.env, cwd=self.work, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
            sys.exit(f"bench: {scenario}: ansible-playbook failed (rc={proc.returncode})")
        cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
        changed = sum(int(c) for c in RECAP_CHANGED.findall(proc.stdout))
        tasks = [line.split(None, 1)[1] for line in proc.stdout.splitlines() if line.startswith("task_times ")]
        calls = self.oci_calls()
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "changed": changed,
            "oci_procs": len(calls),
            "oci_commands": describe_calls(calls),
            "oci_argvs": calls,
            "tasks": tasks,
        }

    def fresh_prefix(self, prefix: str, hosts: int, unrelated: int) -> None:
        """Empty the bucket and put the unrelated records under the prefix of the coming save."""
        self.server.reset()
        fill(self.server, unrelated_records(prefix, host_names(hosts), unrelated))

    def check_saved(self, prefix: str, hosts: int, unrelated: int, bucket: str = BUCKET) -> None:
        """The save stored one record per host and left the unrelated records alone."""
        names = set(self.server.list_objects(bucket, prefix))
        wanted = {f"{prefix}{host}/{PLAY_NAME}/{JOB_NAME}.json" for host in host_names(hosts)}
        if not wanted <= names or len(names) != hosts + unrelated:
            sys.exit(
                f"bench: after the save, {prefix} holds {len(names)} objects, {len(wanted - names)} records missing"
            )


def describe_calls(calls: list[list[str]]) -> str:
    """The object commands of a run's oci processes: "bulk-download", "40 head", ..."""
    counts = collections.Counter()
    for argv in calls:
        index = argv.index("object") if "object" in argv else -1
        counts[argv[index + 1] if 0 <= index < len(argv) - 1 else " ".join(argv[:3])] += 1
    return ", ".join(name if n == 1 else f"{n} {name}" for name, n in counts.items()) or "-"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace, bench: Bench, backends: list[str]) -> dict[str, list[dict]]:
    """All runs, round-robin within each backend: one round of its scenarios, then again."""
    samples: dict[str, list[dict]] = {name: [] for b in backends for name in SUITES[b]}
    for rep in range(1, args.repeat + 1):
        for backend in backends:
            for scenario in RUN_ORDER[backend]:
                # The floor copies into a fresh directory; the save and load of a round share
                # theirs, which the first save finds empty (for OCI: its prefix, holding only
                # the unrelated records).
                bench_dir = bench.work / (f"floor{rep}" if scenario == "floor" else f"{backend}{rep}")
                prefix = f"{backend}{rep}/"
                if scenario == "floor":
                    bench_dir.mkdir()
                if scenario == "oci save":
                    bench.fresh_prefix(prefix, args.hosts, UNRELATED)
                sample = bench.run(scenario, args.hosts, bench_dir, prefix)
                samples[scenario].append(sample)
                if scenario == "oci save":
                    bench.check_saved(prefix, args.hosts, UNRELATED)
                if scenario.endswith("load"):
                    # Untimed: the same load again, then an assert that every host found its id.
                    bench.run(f"{scenario} check", args.hosts, bench_dir, prefix)
                oci = f"  oci: {sample['oci_commands']}" if backend == "oci" else ""
                log(f"  run {rep}/{args.repeat} {scenario:<11} {sample['wall_s']:6.2f} s{oci}")
                for line in sample["tasks"]:
                    log(f"      {line}")
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
                "oci_procs": max(r["oci_procs"] for r in runs),
                "oci_commands": runs[-1]["oci_commands"],
                "target": TARGETS.get(name),
                "samples": [{k: v for k, v in r.items() if k != "oci_argvs"} for r in runs],
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


def print_heading(header: str) -> None:
    """A table's column names and the rule under them."""
    print(header)
    print("-" * len(header))


def print_table(rows: list[dict], meta: dict) -> None:
    print(
        f"ansible-core {meta['ansible_core']}, hosts={meta['hosts']}, "
        f"forks={meta['forks']}, repeat={meta['repeat']} (medians); "
        f"OCI bucket with {UNRELATED} unrelated records under the batch's prefix"
    )
    header = (
        f"{'scenario':<11} {'wall s':>7} {'CPU s':>7} {'wall/floor':>10} "
        f"{'CPU/floor':>9} {'target':>7}  result  changed  oci processes per run"
    )
    print_heading(header)
    for row in rows:
        target = "-" if row["target"] is None else f"<={row['target']}x"
        verdict = {None: "-", True: "PASS", False: "MISS"}[row["pass"]]
        oci = f"{row['oci_procs']:>3} ({row['oci_commands']})" if row["scenario"].startswith("oci") else "  -"
        print(
            f"{row['scenario']:<11} {row['wall_s']:7.2f} {row['cpu_s']:7.2f} "
            f"{row['wall_ratio']:9.2f}x {row['cpu_ratio']:8.2f}x {target:>7}  "
            f"{verdict:<6}  {row['changed']:>7}  {oci}"
        )


def scaling(args: argparse.Namespace, bench: Bench, backends: list[str]) -> list[dict]:
    """Save (new job) and load at 10, 40 and 160 hosts, with the floors unless --no-floor."""
    plan = {
        "filesystem": ("floor", "first save", "load"),
        "oci": ("oci save", "oci floor", "oci load"),
    }
    samples: dict[tuple[str, int], list[dict]] = collections.defaultdict(list)
    for rep in range(1, args.repeat + 1):
        for hosts in args.sizes:
            for backend in backends:
                for scenario in plan[backend]:
                    if scenario.endswith("floor") and args.no_floor:
                        continue
                    # As in measure: the floor copies into a fresh directory, the save and the
                    # load share theirs (and their prefix, for OCI).
                    if scenario == "floor":
                        bench_dir = bench.work / f"scale-floor-{hosts}-{rep}"
                        bench_dir.mkdir()
                    else:
                        bench_dir = bench.work / f"scale-{backend}-{hosts}-{rep}"
                    prefix = f"scale-{hosts}-{rep}/"
                    if scenario == "oci save":
                        bench.fresh_prefix(prefix, hosts, UNRELATED)
                    sample = bench.run(scenario, hosts, bench_dir, prefix)
                    if scenario == "oci save":
                        bench.check_saved(prefix, hosts, UNRELATED)
                    if scenario.endswith("load"):
                        bench.run(f"{scenario} check", hosts, bench_dir, prefix)
                    samples[(scenario, hosts)].append(sample)
                    log(f"  run {rep}/{args.repeat} {hosts:>4} hosts {scenario:<10} {sample['wall_s']:6.2f} s")
    rows = []
    for backend in backends:
        for scenario in sorted(plan[backend], key=lambda s: (not s.endswith("floor"), plan[backend].index(s))):
            for hosts in args.sizes:
                runs = samples.get((scenario, hosts))
                if not runs:
                    continue
                wall = statistics.median(r["wall_s"] for r in runs)
                cpu = statistics.median(r["cpu_s"] for r in runs)
                rows.append(
                    {
                        "backend": backend,
                        "scenario": scenario,
                        "hosts": hosts,
                        "wall_s": wall,
                        "cpu_s": cpu,
                        "wall_per_host_ms": 1000 * wall / hosts,
                        "cpu_per_host_ms": 1000 * cpu / hosts,
                        "oci_procs": max(r["oci_procs"] for r in runs),
                        "oci_commands": runs[-1]["oci_commands"],
                    }
                )
    floors = {(row["backend"], row["hosts"]): row for row in rows if row["scenario"].endswith("floor")}
    for row in rows:
        floor = floors.get((row["backend"], row["hosts"]))
        row["wall_ratio"] = row["wall_s"] / floor["wall_s"] if floor else None
        row["cpu_ratio"] = row["cpu_s"] / floor["cpu_s"] if floor else None
    return rows


def print_scaling(rows: list[dict], meta: dict) -> None:
    print(
        f"ansible-core {meta['ansible_core']}, forks={meta['forks']}, repeat={meta['repeat']} (medians); "
        f"one batch per run (no serial); OCI bucket with {UNRELATED} unrelated records under the batch's prefix"
    )
    header = (
        f"{'backend':<10} {'scenario':<10} {'hosts':>5} {'wall s':>7} {'CPU s':>7} "
        f"{'wall/host ms':>12} {'CPU/host ms':>11} {'wall/floor':>10} {'CPU/floor':>9}  oci processes per batch"
    )
    print_heading(header)
    for row in rows:
        oci = f"{row['oci_procs']:>3} ({row['oci_commands']})" if row["backend"] == "oci" else "  -"
        print(
            f"{row['backend']:<10} {row['scenario']:<10} {row['hosts']:>5} {row['wall_s']:7.2f} {row['cpu_s']:7.2f} "
            f"{row['wall_per_host_ms']:12.0f} {row['cpu_per_host_ms']:11.0f} {ratio(row['wall_ratio']):>10} "
            f"{ratio(row['cpu_ratio']):>9}  {oci}"
        )


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall and CPU seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))


def listing(args: argparse.Namespace, bench: Bench) -> list[dict]:
    """A load of the batch in a bucket with no other records, with many under its prefix, and under another.

    Each condition has its own bucket, filled and saved into once; then the loads run
    round-robin over the conditions, each followed by its bulk-download run alone.
    """
    conditions = (
        # label, bucket, the batch's prefix, the prefix of the unrelated records
        ("no other records", "listing-empty", "mine/", None),
        (f"{LISTING_UNRELATED:,} under the same prefix", "listing-shared", "mine/", "mine/"),
        (f"{LISTING_UNRELATED:,} under another prefix", "listing-apart", "mine/", "others/"),
    )
    for _label, bucket, prefix, other_prefix in conditions:
        bench.server.add_bucket(bucket)
        if other_prefix is not None:
            fill(bench.server, unrelated_records(other_prefix, host_names(args.hosts), LISTING_UNRELATED), bucket)
        bench_dir = bench.work / f"listing-{bucket}"
        bench.run("oci save", args.hosts, bench_dir, prefix, bucket)  # untimed: the records to load
        unrelated = LISTING_UNRELATED if other_prefix == prefix else 0
        bench.check_saved(prefix, args.hosts, unrelated, bucket)
        bench.run("oci load check", args.hosts, bench_dir, prefix, bucket)  # and every host finds its id
    samples: dict[str, list[dict]] = collections.defaultdict(list)
    for rep in range(1, args.repeat + 1):
        for label, bucket, prefix, _others in conditions:
            bench_dir = bench.work / f"listing-{bucket}"
            bench.server.clear_log()
            sample = bench.run("oci load", args.hosts, bench_dir, prefix, bucket)
            lists = [e for e in bench.server.request_log() if e.method == "GET" and e.object_name is None]
            # The load's one oci process alone, outside Ansible: the same command line again.
            (argv,) = sample["oci_argvs"]
            index = argv.index("--download-dir")
            download = str(bench.work / f"download-{bucket}-{rep}")
            argv = [*argv[: index + 1], download, *argv[index + 2 :]]
            cli_wall, cli_cpu = timed([bench.real_oci, *argv], bench.env)
            sample.update(list_requests=len(lists), cli_wall_s=cli_wall, cli_cpu_s=cli_cpu)
            sample["listed_prefix"] = argv[argv.index("--prefix") + 1]
            samples[label].append(sample)
            log(
                f"  run {rep}/{args.repeat} {label:<30} load {sample['wall_s']:6.2f} s, bulk-download {cli_wall:5.2f} s"
            )
    rows = []
    for label, runs in samples.items():
        rows.append(
            {
                "bucket": label,
                "listed_prefix": runs[-1]["listed_prefix"],
                "list_requests": max(r["list_requests"] for r in runs),
                "oci_procs": max(r["oci_procs"] for r in runs),
                **{k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "cli_wall_s", "cli_cpu_s")},
            }
        )
    base = rows[0]
    for row in rows:
        row["wall_added_s"] = row["wall_s"] - base["wall_s"]
        row["cli_cpu_added_s"] = row["cli_cpu_s"] - base["cli_cpu_s"]
    return rows


def print_listing(rows: list[dict], meta: dict) -> None:
    print(
        f"ansible-core {meta['ansible_core']}, hosts={meta['hosts']}, forks={meta['forks']}, "
        f"repeat={meta['repeat']} (medians); oci load of the batch, and its bulk-download run alone"
    )
    header = (
        f"{'bucket':<30} {'--prefix':<9} {'list requests':>13} {'load wall s':>11} {'load CPU s':>10} "
        f"{'+wall s':>7}  {'bulk-download wall s':>20} {'CPU s':>6} {'+CPU s':>6}"
    )
    print_heading(header)
    for row in rows:
        print(
            f"{row['bucket']:<30} {row['listed_prefix']:<9} {row['list_requests']:>13} {row['wall_s']:11.2f} "
            f"{row['cpu_s']:10.2f} {row['wall_added_s']:+7.2f}  {row['cli_wall_s']:20.2f} {row['cli_cpu_s']:6.2f} "
            f"{row['cli_cpu_added_s']:+6.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--scaling", action="store_true", help="save and load at 10, 40 and 160 hosts")
    mode.add_argument("--listing", action="store_true", help=f"a load beside {LISTING_UNRELATED:,} unrelated records")
    parser.add_argument("--hosts", type=int, default=40, help="local hosts (40)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SCALING_HOSTS), help="hosts of --scaling")
    parser.add_argument("--forks", type=int, default=10, help="ansible forks (10)")
    parser.add_argument("--repeat", type=int, help="runs per scenario (3; 1 with --scaling)")
    parser.add_argument("--no-floor", action="store_true", help="--scaling without the floors")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a MISS")
    parser.add_argument("--backend", choices=["all", *SUITES], default="all", help="which backend (all)")
    parser.add_argument("--tasks", action="store_true", help="also print the wall time of each task of each run")
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 1 if args.scaling else 3
    if min(args.hosts, args.forks, args.repeat, *args.sizes) < 1:
        parser.error("--hosts, --sizes, --forks and --repeat must be at least 1")

    default_path = str(REPO / ".ansible" / "collections")
    collections_path = os.environ.get("ANSIBLE_COLLECTIONS_PATH", default_path)
    # No ANSIBLE_* setting of the caller leaks in: the scratch ansible.cfg decides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR="1")
    # The roles run the oci CLI found on PATH: the one installed beside this Python (behind the wrapper).
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
        "load_average_start": os.getloadavg(),
    }

    backends = list(SUITES) if args.backend == "all" else [args.backend]
    missed = False
    with tempfile.TemporaryDirectory(prefix="async_job_bench-") as tmp, OCIServer(buckets=[BUCKET]) as server:
        bench = Bench(Path(tmp), server, env, args.forks, args.tasks)
        warmup = bench.work / "warmup"
        warmup.mkdir()
        bench.run("floor", 1, warmup)  # untimed, one host: fills the caches
        if args.scaling:
            rows = scaling(args, bench, backends)
            print_scaling(rows, meta)
        elif args.listing:
            rows = listing(args, bench)
            print_listing(rows, meta)
        else:
            rows = summarize(measure(args, bench, backends))
            print_table(rows, meta)
            for row in rows:
                if row["scenario"] in RESAVES and row["changed"]:
                    print(f"warning: {row['scenario']} reported changed={row['changed']}, expected 0")
                    missed = True
            missed = missed or any(row["pass"] is False for row in rows)
    meta["load_average_end"] = os.getloadavg()
    start, end = (" ".join(f"{x:.1f}" for x in meta[k]) for k in ("load_average_start", "load_average_end"))
    print(f"load average (1, 5, 15 min): at the start {start}, at the end {end}; CPUs: {os.cpu_count()}")
    if args.json:
        key = "scaling" if args.scaling else "listing" if args.listing else "scenarios"
        Path(args.json).write_text(json.dumps({**meta, key: rows}, indent=2) + "\n")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
