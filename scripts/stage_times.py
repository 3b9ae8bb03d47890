"""Stage wall times from timestamped `dvc repro` logs: every segment, and the sum per stage.

usage: python scripts/stage_times.py [--csv OUT] LOG[@YYYY-MM-DD] ...

Each LOG line starts with ``YYYY-MM-DD HH:MM:SS`` (scripts/published_run.sh writes them so) or
with ``HH:MM:SS`` alone (``dvc repro 2>&1 | awk '{ print strftime("%H:%M:%S"), $0; fflush() }'``);
for the latter, ``@YYYY-MM-DD`` gives the date of the log's first line (the file's
modification date is not trusted) and a clock going backwards inside a log is the next day.
A heartbeat line ``[hb] YYYY-MM-DD HH:MM:SS`` counts as a timestamp too.

A segment runs from ``Running stage 'X'`` to the next ``Running stage`` line, or to the
log's last timestamp when the log was cut (a session stop, an error): such a segment is
marked ``cut`` and its end is a lower bound; a log that a later sitting of
scripts/published_run.sh appended to is cut where the new sitting starts, so the hours between
sittings are never counted (a progress bar that redraws in place logs
nothing until it ends, so a wrapper that also prints a timestamped ``heartbeat`` line every
minute into the same log bounds that end to the minute). Why a script: the published run took longer
than one sitting, so its wall time is a sum of segments from several logs, and segments
that were re-done (after a code change or a crash) must be counted and named, not hidden.
The archive keeps a copy of the workspace log per sitting, and a later copy repeats the earlier
sittings' lines: a segment found in several logs (same stage, same start) counts once, with
its latest end.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

LINE = re.compile(r"^(?:(\d{4}-\d\d-\d\d) )?(\d\d):(\d\d):(\d\d) (.*)$")
HEARTBEAT = re.compile(r"^\[hb\] (\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d)$")
STAGE = re.compile(r"Running stage '([^']+)'")
# scripts/published_run.sh starts every sitting with these lines, appending to the same log.
SITTING = re.compile(r"^(restored \d+ file\(s\) into|\[published\] dvc repro in )")


def segments(path: Path, first_day: datetime | None) -> list[dict]:
    day, prev, last, done = first_day, None, None, None
    out, cur = [], None
    for raw in path.read_text(errors="replace").splitlines():
        m = LINE.match(raw)
        hb = HEARTBEAT.match(raw) if not m else None
        if hb:
            date, hh, mm, ss, text = hb[1], hb[2], hb[3], hb[4], "[heartbeat]"
        elif m:
            date, hh, mm, ss, text = m[1], m[2], m[3], m[4], m[5]
        else:
            continue
        if date:
            t = datetime.strptime(f"{date} {hh}:{mm}:{ss}", "%Y-%m-%d %H:%M:%S")
        else:
            if day is None:
                raise SystemExit(f"error: {path}: its lines carry no date; give the first line's as {path}@YYYY-MM-DD")
            t = day + timedelta(hours=int(hh), minutes=int(mm), seconds=int(ss))
            if prev is not None and t < prev:
                day += timedelta(days=1)
                t += timedelta(days=1)
        if SITTING.match(text) and cur:  # a new sitting: the open stage was cut at the last line before it
            out.append({**cur, "end": last, "cut": True})
            cur, done = None, None
        prev = last = t
        if text.startswith("Updating lock file"):  # the previous stage is done: the next one starts now
            done = t
        s = STAGE.search(text)
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
        rows += segments(Path(name), datetime.strptime(date, "%Y-%m-%d") if date else None)
    rows = [r for r in rows if (r["end"] - r["start"]).total_seconds() > 0]
    unique: dict[tuple, dict] = {}
    for r in rows:  # the same segment in an earlier copy of an appended log: keep the latest end
        k = (r["stage"], r["start"])
        if k not in unique or r["end"] > unique[k]["end"]:
            unique[k] = r
    rows = sorted(unique.values(), key=lambda r: (r["start"], r["stage"]))
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
