"""Benchmark async_job_save and async_job_load against a plain copy task (the floor).

Run from the repository root with the virtualenv's Python (``make bench``)::

    .venv/bin/python bench/bench.py [--hosts 40] [--forks 10] [--repeat 3]

Each scenario is its own ansible-playbook run over N local hosts. The runs are
interleaved round-robin, and the median of each scenario is compared with the floor:
one ansible.builtin.copy per host of a small JSON file.
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
BIN = Path(sys.executable).parent
PLAY_NAME = "async_job bench"
JOB_NAME = "bench_job"
# Highest acceptable ratio of a scenario's median wall time to the floor's.
TARGETS = {"first save": 1.3, "re-save": 1.1, "load": 0.3}
SCENARIOS = ("floor", *TARGETS)
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
    check = {
        "name": "Check that the saved job id was found",
        "ansible.builtin.assert": {
            "that": [
                "async_job_load_found | bool",
                "async_job_load_ansible_job_id == bench_job_id",
            ],
            "quiet": True,
        },
    }
    tasks = {"floor": [floor], "first save": [save], "re-save": [save]}
    tasks["load"] = [load, check]
    return {name: [{"name": PLAY_NAME, "hosts": "all", "gather_facts": False, "tasks": t}] for name, t in tasks.items()}


def setup(work: Path, hosts: int, forks: int) -> None:
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
    (work / "ansible.cfg").write_text(f"[defaults]\ninventory = {work / 'inventory.yml'}\nforks = {forks}\n")
    for name, book in playbooks().items():
        (work / playbook_file(name)).write_text(yaml.safe_dump(book, sort_keys=False))


def playbook_file(scenario: str) -> str:
    return scenario.replace(" ", "_") + ".yml"


def run(work: Path, env: dict, scenario: str, bench_dir: Path, *opts: str) -> dict:
    """Run one scenario: wall seconds, CPU seconds of the children, changed count."""
    extra = json.dumps({"bench_dir": str(bench_dir)})
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
    return {"wall_s": wall, "cpu_s": cpu, "changed": changed}


def measure(args: argparse.Namespace, env: dict) -> dict[str, list[dict]]:
    """All runs, round-robin: floor, first save, re-save, load; then again."""
    samples: dict[str, list[dict]] = {name: [] for name in SCENARIOS}
    with tempfile.TemporaryDirectory(prefix="async_job_bench-") as tmp:
        work = Path(tmp)
        setup(work, args.hosts, args.forks)
        env = {**env, "ANSIBLE_CONFIG": str(work / "ansible.cfg")}
        warmup = work / "warmup"
        warmup.mkdir()
        run(work, env, "floor", warmup, "--limit", "all[0]")  # untimed, fills caches
        for rep in range(1, args.repeat + 1):
            floor_dir, state_dir = work / f"floor{rep}", work / f"state{rep}"
            floor_dir.mkdir()  # the state directory is left for the first save
            dirs = (floor_dir, state_dir, state_dir, state_dir)
            for scenario, bench_dir in zip(SCENARIOS, dirs, strict=True):
                sample = run(work, env, scenario, bench_dir)
                samples[scenario].append(sample)
                print(
                    f"  run {rep}/{args.repeat} {scenario:<10} {sample['wall_s']:6.2f} s",
                    file=sys.stderr,
                )
    return samples


def summarize(samples: dict[str, list[dict]]) -> list[dict]:
    rows = []
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
        row["wall_ratio"] = row["wall_s"] / rows[0]["wall_s"]
        row["cpu_ratio"] = row["cpu_s"] / rows[0]["cpu_s"]
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
    args = parser.parse_args()
    if min(args.hosts, args.forks, args.repeat) < 1:
        parser.error("--hosts, --forks and --repeat must be at least 1")

    default_path = str(REPO / ".ansible" / "collections")
    collections = os.environ.get("ANSIBLE_COLLECTIONS_PATH", default_path)
    # No ANSIBLE_* setting of the caller leaks in: the scratch ansible.cfg decides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR="1")
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

    rows = summarize(measure(args, env))
    print_table(rows, meta)
    resave_changed = rows[SCENARIOS.index("re-save")]["changed"]
    if resave_changed:
        print(f"warning: re-save reported changed={resave_changed}, expected 0")
    if args.json:
        figures = {**meta, "scenarios": rows}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    missed = resave_changed > 0 or any(row["pass"] is False for row in rows)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
