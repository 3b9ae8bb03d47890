#!/usr/bin/env bash
# The published run, resumable across machines: a workspace clone of this checkout in the
# full setting, the committed records restored into it, `dvc repro` with a timestamp on every
# line, and the finished records saved back into this checkout's results/records every
# SAVE_EVERY seconds (and at the end), ready to commit.
#
# usage: bash scripts/published_run.sh [WORKSPACE] [dvc repro args...]
#   WORKSPACE defaults to ../cdrbench-published. An existing workspace is reused as it is
#   (fast-forward it yourself); a new one is cloned from this checkout's HEAD.
# log: WORKSPACE/published-run.log (a heartbeat line every minute, so a cut-off run's end is
# known to the minute), copied into results/records/logs/ at every save.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ws="${1:-$here/../cdrbench-published}"
shift || true
save_every="${SAVE_EVERY:-900}"
if [ ! -d "$ws/.git" ]; then
  git clone -q "$here" "$ws" || { echo "error: could not clone $here into $ws" >&2; exit 1; }
fi
ws="$(cd "$ws" && pwd)"
cd "$ws"
sed -i 's/^setting: [a-z]*/setting: full/' params.yaml
grep -q '^setting: full' params.yaml || { echo "error: could not select the full setting in $ws/params.yaml" >&2; exit 1; }
make -s venv
export PATH="$ws/.venv/bin:$PATH" DVC_NO_ANALYTICS=1 PYTHONHASHSEED=0 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
export CDRBENCH_DATA_MIRROR="${CDRBENCH_DATA_MIRROR:-$(cd "$here/.." && pwd)/shared/data}"
archive="$here/results/records"
log="$ws/published-run.log"
# The timestamped log goes into the archive with each save: stage wall times
# (scripts/stage_times.py) are measured from it, and the workspace may not outlive the session.
logcopy="$archive/logs/published-run-$(date -u +%Y%m%dT%H%M%SZ).log"
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date '+%F %T')" "$line"; done; }
save() {  # serialised: the periodic save and the final one must not write the same files at once
  flock "$ws/.records-save.lock" python "$here/scripts/records_archive.py" save --workspace "$ws" --archive "$archive" 2>&1 | stamp >> "$log"
  mkdir -p "$(dirname "$logcopy")" && cp "$log" "$logcopy"
}
if [ -f "$archive/MANIFEST.tsv" ]; then
  python "$here/scripts/records_archive.py" restore --workspace "$ws" --archive "$archive" 2>&1 | stamp >> "$log" || exit 1
fi
( while sleep 60; do echo "$(date '+%F %T') [heartbeat]"; done ) >> "$log" &
beat=$!
( while sleep "$save_every"; do save; done ) &
saver=$!
trap 'kill $beat $saver 2>/dev/null' EXIT
echo "$(date '+%F %T') [published] dvc repro in $ws at $(git rev-parse --short HEAD)" >> "$log"
dvc repro "$@" 2>&1 | stamp >> "$log"
rc=${PIPESTATUS[0]}
kill $saver 2>/dev/null
echo "$(date '+%F %T') [published] dvc repro rc=$rc" >> "$log"
save  # after the rc line, so the archived log says how the run ended
exit "$rc"
