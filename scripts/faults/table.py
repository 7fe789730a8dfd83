"""Prints the figures of a fault run (the JSON of FAULTS_RESULTS) as the
Markdown table used in RELIABILITY.md.

    python table.py results.json
"""

import json
import sys


def row(r):
    if "skipped" in r:
        return f"| {r['scenario']} | skipped: {r['skipped']} | | | | | | | |"
    if "accepted" not in r:
        return f"| {r['scenario']} | the scenario itself failed | | | | | | | **failed** |"
    answers = r["answers"]
    refused = ", ".join(f"{n}× {k}" for k, n in answers.items() if k != "202") or "–"
    verdict = "ok" if not r["broken"] else "**broken**"
    return (f"| {r['scenario']} | {r['requests']} | {r['accepted']} | {refused} | {r['delivered']} | "
            f"{r['lost']} | {r['duplicates']} ({r['bound']}) | {'yes' if r['agree'] else '**no**'} | {verdict} |")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        run = json.load(f)
    print(f"{run['date']}, {run['machine']}:\n")
    print("| scenario | requests | accepted (202) | other answers | delivered | lost | duplicates (bound) "
          "| statuses agree | promises |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in run["reports"]:
        print(row(r))
    broken = [r for r in run["reports"] if r.get("broken")]
    if broken:
        print()
        for r in broken:
            for b in r["broken"]:
                print(f"- {r['scenario']}: {b.splitlines()[0]}")


if __name__ == "__main__":
    main()
