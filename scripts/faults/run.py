"""Runs fault scenarios against the real mailbridge binary and reports, for
each: accepted, delivered, lost, duplicates (and their bound), and whether
the final statuses agree with what the SMTP server saw.

    python run.py --binary target/release/mailbridge quick|full|SCENARIO...

Exits 1 when a promise broke in any scenario, 0 otherwise (skipped scenarios
say why and do not fail the run).
"""

import argparse
import json
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import scenarios_postgres
import scenarios_providers
import scenarios_sqlite
from context import Context, Skip

SCENARIOS = {**scenarios_sqlite.SCENARIOS, **scenarios_postgres.SCENARIOS, **scenarios_providers.SCENARIOS}
QUICK = ["disk-full", "smtp-drop-mid-data", "kill9-sqlite", "provider-lost-reply"]
FULL = list(SCENARIOS)


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{platform.system()} {platform.release()}, {cores} cores ({cpu})"


def run_one(name, args, work):
    summary = " ".join((SCENARIOS[name].__doc__ or "").split())
    print(f"\n== {name}: {summary}", flush=True)
    began = time.time()
    try:
        with Context(name, args.binary, work, args.toxiproxy) as ctx:
            report = SCENARIOS[name](ctx)
    except Skip as reason:
        report = {"scenario": name, "skipped": str(reason), "broken": []}
    except Exception as e:  # a broken harness is reported as such, not as a pass
        output = getattr(e, "stderr", None) or ""
        report = {"scenario": name, "broken": ["the scenario itself failed:\n" + traceback.format_exc() + output]}
    report["seconds"] = round(time.time() - began, 1)
    print_report(report)
    if not report["broken"] and not args.keep:
        # Databases add up over a full run: keep only what explains a failure.
        shutil.rmtree(Path(work) / name, ignore_errors=True)
    return report


def print_report(r):
    if "skipped" in r:
        print(f"<= {r['scenario']}: SKIPPED ({r['skipped']})")
        return
    if "accepted" in r:
        print(f"   requests {r['requests']} {r['answers']}")
        print(f"   accepted {r['accepted']}, delivered {r['delivered']} (+{r['delivered_unanswered']} of "
              f"unanswered requests), failed {r['failed_with_reason']}, lost {r['lost']}, "
              f"duplicates {r['duplicates']} (bound {r['bound']}), statuses agree: {r['agree']}, "
              f"attempts: {r['attempts_recorded']} recorded, {r['attempts_at_sink']} reached the sink's end of DATA")
    for b in r["broken"][:30]:
        print(f"   BROKEN: {b}")
    print(f"<= {r['scenario']}: {'FAILED' if r['broken'] else 'ok'} in {r['seconds']}s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--toxiproxy", default="")
    parser.add_argument("--results", help="write the reports as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("what", nargs="+", help="quick, full, or scenario names: " + ", ".join(SCENARIOS))
    args = parser.parse_args()
    # A bounded run that is cut short still stops its processes and unmounts.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = []
    for what in args.what:
        names += QUICK if what == "quick" else FULL if what == "full" else [what]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    work = Path(tempfile.mkdtemp(prefix="mailbridge-faults-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user and must reach its directory
    print(f"fault suite: {len(names)} scenario(s) on {machine()}; work in {work}", flush=True)
    reports = [run_one(name, args, work) for name in names]
    broken = [r["scenario"] for r in reports if r["broken"]]
    if args.results:
        Path(args.results).write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
            "reports": reports}, indent=2))
    if not args.keep and not broken:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"FAILED: {', '.join(broken)} (logs in {work})" if broken else f"all {len(names)} scenario(s) kept every promise")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
