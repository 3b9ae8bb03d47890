#!/usr/bin/env bash
# Land a finished published run: copy its committed outputs from the workspace into this
# checkout, after checking that they are complete and belong to this checkout's code.
#
# usage: bash scripts/land_published.sh [WORKSPACE]   (default ../cdrbench-published)
#
# Refuses (one line, nothing copied) unless: the workspace is at this checkout's HEAD, in the
# full setting; `dvc status` there finds every stage up to date; and the built-output tests
# pass there. Then copies params.yaml, dvc.lock, datasets/ and the report's outputs, and saves
# the workspace's records into results/records. Committing is left to you.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ws="$(cd "${1:-$here/../cdrbench-published}" && pwd)"
fail() { echo "error: $*; nothing copied" >&2; exit 1; }
[ "$(git -C "$ws" rev-parse HEAD)" = "$(git -C "$here" rev-parse HEAD)" ] \
  || fail "workspace $ws is at $(git -C "$ws" rev-parse --short HEAD), this checkout at $(git -C "$here" rev-parse --short HEAD)"
grep -q '^setting: full' "$ws/params.yaml" || fail "workspace params.yaml is not in the full setting"
status="$(cd "$ws" && PATH="$ws/.venv/bin:$PATH" .venv/bin/dvc status 2>&1)"
echo "$status" | grep -q "Data and pipelines are up to date" || fail "dvc status in $ws is not clean: $(echo "$status" | head -n1)"
(cd "$ws" && PATH="$ws/.venv/bin:$PATH" .venv/bin/python -m pytest -q -p no:warnings -m built >/tmp/land-built.log 2>&1) \
  || fail "built-output tests fail in $ws (see /tmp/land-built.log)"
mirror() { rm -rf "$2" && mkdir -p "$(dirname "$2")" && cp -a "$1" "$2"; }  # $2 becomes an exact copy of $1
for d in leaderboard tables figures site metrics external; do
  mirror "$ws/results/$d" "$here/results/$d"
done
mirror "$ws/datasets" "$here/datasets"
cp "$ws/params.yaml" "$ws/dvc.lock" "$here/"
cp "$ws/results/README.md" "$here/results/README.md"
python3 "$here/scripts/records_archive.py" save --workspace "$ws" --archive "$here/results/records"
echo "landed the published outputs of $ws; review with git status, then commit"
