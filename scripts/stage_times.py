"""Stage wall times from timestamped `dvc repro` logs: every segment, and the sum per stage.

usage: python scripts/stage_times.py [--csv OUT] LOG[@YYYY-MM-DD] ...

Each LOG line starts with ``HH:MM:SS`` (``dvc repro 2>&1 | awk '{ print strftime("%H:%M:%S"), $0; fflush() }'``);
``@YYYY-MM-DD`` gives the date of the log's first line (default: the file's modification date
is not trusted, so give it). A clock going backwards inside a log is the next day.

A segment runs from ``Running stage 'X'`` to the next ``Running stage`` line, or to the
log's last timestamp when the log was cut (a session stop, an error): such a segment is
marked ``cut`` and its end is a lower bound (a progress bar that redraws in place logs
nothing until it ends, so a wrapper that also prints a timestamped ``heartbeat`` line every
minute into the same log bounds that end to the minute). Why a script: the published run took longer
than one sitting, so its wall time is a sum of segments from several logs, and segments
that were re-done (after a code change or a crash) must be counted and named, not hidden.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

LINE = re.compile(r"^(\d\d):(\d\d):(\d\d) (.*)$")
STAGE = re.compile(r"Running stage '([^']+)'")


def segments(path: Path, first_day: datetime) -> list[dict]:
    day, prev, last, done = first_day, None, None, None
    out, cur = [], None
    for raw in path.read_text(errors="replace").splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        t = day + timedelta(hours=int(m[1]), minutes=int(m[2]), seconds=int(m[3]))
        if prev is not None and t < prev:
            day += timedelta(days=1)
            t += timedelta(days=1)
        prev = last = t
        if m[4].startswith("Updating lock file"):  # the previous stage is done: the next one starts now
            done = t
        s = STAGE.search(m[4])
        if s:
            # DVC's own lines reach a pipe late: "Running stage" can arrive with the stage's first
            # output (33 minutes late once), so a stage starts when the previous one locked.
            start = done if done is not None else t
            if cur:
                out.append({**cur, "end": start, "cut": False})
            cur, done = {"stage": s[1], "start": start, "log": path.name}, None
    if cur:
        out.append({**cur, "end": last, "cut": True})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", nargs="+")
    ap.add_argument("--csv", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for spec in args.logs:
        name, _, date = spec.partition("@")
        if not date:
            print(f"error: {name}: give the date of its first line as {name}@YYYY-MM-DD", file=sys.stderr)
            return 1
        rows += segments(Path(name), datetime.strptime(date, "%Y-%m-%d"))
    rows = [r for r in rows if (r["end"] - r["start"]).total_seconds() > 0]
    total: dict[str, float] = {}
    for r in rows:
        r["minutes"] = round((r["end"] - r["start"]).total_seconds() / 60, 1)
        total[r["stage"]] = total.get(r["stage"], 0.0) + r["minutes"]
        print(f"{r['stage']:28s} {r['start']:%m-%d %H:%M:%S} -> {r['end']:%m-%d %H:%M:%S} {r['minutes']:7.1f} min"
              f"{'  (cut: end is the last line logged)' if r['cut'] else ''}  {r['log']}")
    print()
    for k, v in total.items():
        print(f"{k:28s} {v:7.1f} min")
    print(f"{'all segments':28s} {sum(total.values()):7.1f} min")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["stage", "start", "end", "minutes", "cut", "log"])
            for r in rows:
                w.writerow([r["stage"], f"{r['start']:%Y-%m-%d %H:%M:%S}", f"{r['end']:%Y-%m-%d %H:%M:%S}", r["minutes"], r["cut"], r["log"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
