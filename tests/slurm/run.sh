#!/usr/bin/env bash
# `make slurm-test`: a real one-node Slurm (tests/slurm/cluster.sh) and the job patterns that
# `resnet-audit slurm` relies on: an array job, a merge job that depends on it (afterok), and a task
# cancelled mid-run (scancel) then resubmitted, resuming where it stopped.
# Exits non-zero on any failure; always stops the daemons it started and prints its time.
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly JOB_TIMEOUT="${SLURM_TEST_JOB_TIMEOUT:-120}"
readonly ARRAY_TASKS=4
readonly RESUME_CHUNKS=6
SECONDS=0

log() { echo "slurm-test: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

CLUSTER_DIR=""
finish() {
  local status=$?
  if [ -n "$CLUSTER_DIR" ]; then
    [ "$status" -eq 0 ] || show_failure_context
    tests/slurm/cluster.sh stop "$CLUSTER_DIR" || status=1
  fi
  if [ "$status" -eq 0 ]; then log "PASS in ${SECONDS}s"; else log "FAILED after ${SECONDS}s"; fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

show_failure_context() {
  squeue >&2 2>/dev/null || true
  local file
  for file in "$CLUSTER_DIR"/jobs/*.out "$CLUSTER_DIR"/audit/*/slurm/*.out "$CLUSTER_DIR"/log/slurmctld.log "$CLUSTER_DIR"/log/slurmd.log; do
    [ -f "$file" ] || continue
    echo "----- $file (last 20 lines) -----" >&2
    tail -n 20 "$file" >&2
  done
}

CLUSTER_DIR="$(tests/slurm/cluster.sh start)"
export SLURM_CONF="$CLUSTER_DIR/slurm.conf"
JOBS="$CLUSTER_DIR/jobs"
log "cluster up after ${SECONDS}s"

# JobState of a job (for an array, of every task: one per line). Empty when Slurm forgot it.
job_states() { scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }

# Waits until every task of job $1 has left the pending/running states; fails past TIMEOUT
# seconds (default JOB_TIMEOUT).
wait_finished() { # JOBID WHAT [TIMEOUT]
  local timeout="${3:-$JOB_TIMEOUT}"
  local deadline=$((SECONDS + timeout)) states
  while :; do
    states="$(job_states "$1")"
    [ -n "$states" ] || fail "$2 (job $1) is unknown to Slurm"
    if ! grep -qE '^(PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|RESIZING)$' <<<"$states"; then
      return
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "$2 (job $1) not finished after ${timeout}s: $(tr '\n' ' ' <<<"$states")"
    sleep 0.5
  done
}

require_all_completed() { # JOBID WHAT
  local states
  states="$(job_states "$1")"
  if grep -vqx COMPLETED <<<"$states"; then
    fail "$2 (job $1) did not complete: $(tr '\n' ' ' <<<"$states")"
  fi
}

# --- 1. an array job and a merge job that depends on it ----------------------------------------
# The shape of `resnet-audit slurm EXPERIMENT --shards N`: N array tasks, each one shard, and one
# merge job started by Slurm only when every task exited 0.
array_id="$(sbatch --parsable --job-name=shards --array=0-$((ARRAY_TASKS - 1)) --cpus-per-task=1 \
  --chdir="$JOBS" --output="$JOBS/shard-%a.out" \
  --wrap='echo "task $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT cpus-per-task $SLURM_CPUS_PER_TASK" > "part-$SLURM_ARRAY_TASK_ID"')"
merge_id="$(sbatch --parsable --job-name=merge --dependency="afterok:$array_id" \
  --chdir="$JOBS" --output="$JOBS/merge.out" \
  --wrap="cat $(for task in $(seq 0 $((ARRAY_TASKS - 1))); do printf 'part-%s ' "$task"; done)> merged")"
log "submitted array job $array_id (tasks 0-$((ARRAY_TASKS - 1))) and merge job $merge_id (afterok)"

wait_finished "$array_id" "the array job"
require_all_completed "$array_id" "the array job"
wait_finished "$merge_id" "the merge job"
require_all_completed "$merge_id" "the merge job"

expected_merged="$(for task in $(seq 0 $((ARRAY_TASKS - 1))); do
  echo "task $task/$ARRAY_TASKS cpus-per-task 1"
done)"
[ -f "$JOBS/merged" ] || fail "the merge job wrote no $JOBS/merged"
if [ "$(cat "$JOBS/merged")" != "$expected_merged" ]; then
  diff <(echo "$expected_merged") "$JOBS/merged" >&2 || true
  fail "merged output differs from the expected one (diff above: expected, then actual)"
fi
log "array + afterok merge: ok after ${SECONDS}s"

# --- 2. the real thing: `resnet-audit slurm` shards the demo audit, the merge matches one process
# The binary is built by the caller (`make slurm-test` depends on `build`).
BIN="${RESNET_AUDIT_BIN:-$PWD/target/release/resnet-audit}"
[ -x "$BIN" ] || fail "no $BIN: build it first (make slurm-test does)"
readonly AUDIT_TIMEOUT="${SLURM_TEST_AUDIT_TIMEOUT:-900}"
WORK="$CLUSTER_DIR/audit"
mkdir -p "$WORK"

# Waits for job $1 like wait_finished, with the audit's longer limit.
wait_audit() { wait_finished "$1" "$2" "$AUDIT_TIMEOUT"; }

# Requires the merged tables of report $1 to equal the single-process ones byte for byte (the
# report's manifest and date may differ; the tables may not).
require_same_tables() { # REPORT WHAT
  local table
  for table in results.csv results.parquet; do
    [ -f "$1/$table" ] || fail "$2: no $1/$table"
    cmp "$WORK/single/$table" "$1/$table" >&2 || fail "$2: $table differs from the single-process run"
  done
}

started=$SECONDS
"$BIN" audit experiments/demo.yaml --out "$WORK/single" --store "$WORK/single-store" >"$WORK/single.log" 2>&1 \
  || { tail -n 20 "$WORK/single.log" >&2; fail "the single-process audit failed"; }
log "single-process audit: $((SECONDS - started))s"

# Job ids from `resnet-audit slurm --submit`'s last line:
#   submitted shards job <id> (array 0-<n>) and merge job <id> (afterok)
submit_sharded() { # NAME
  "$BIN" slurm experiments/demo.yaml --shards "$ARRAY_TASKS" --cpus-per-task 1 \
    --out "$WORK/$1" --store "$WORK/$1-store" --submit >"$WORK/$1.submit" 2>&1 \
    || { cat "$WORK/$1.submit" >&2; fail "resnet-audit slurm --submit failed"; }
  read -r shards_id merge_id < <(sed -n 's/^submitted shards job \([0-9]*\) .* merge job \([0-9]*\) .*/\1 \2/p' "$WORK/$1.submit")
  [ -n "${shards_id:-}" ] && [ -n "${merge_id:-}" ] || fail "no job ids in: $(cat "$WORK/$1.submit")"
}

started=$SECONDS
submit_sharded sharded
log "submitted $ARRAY_TASKS shards (job $shards_id) and their merge (job $merge_id)"
wait_audit "$shards_id" "the shards"
require_all_completed "$shards_id" "the shards"
wait_audit "$merge_id" "the merge"
require_all_completed "$merge_id" "the merge"
require_same_tables "$WORK/sharded" "the sharded audit"
log "sharded audit ($ARRAY_TASKS shards + merge): tables identical to the single run, $((SECONDS - started))s"

# Once more, with shard 1 cancelled after its first part: the merge (afterok) can then never run
# and is cancelled too; shard 1 is resubmitted alone (--array=1 overrides the script's range) and
# a new merge depends on it.
started=$SECONDS
submit_sharded cancelled
deadline=$((SECONDS + AUDIT_TIMEOUT))
until find "$WORK/cancelled-store" -name 'chunk-000001.parquet' 2>/dev/null | grep -q .; do
  [ "$SECONDS" -lt "$deadline" ] || fail "shard 1 (job ${shards_id}_1) stored no part within ${AUDIT_TIMEOUT}s"
  sleep 0.2
done
scancel "${shards_id}_1"
wait_audit "${shards_id}_1" "the cancelled shard"
[ "$(job_states "${shards_id}_1")" = CANCELLED ] \
  || fail "shard 1 is $(job_states "${shards_id}_1") after scancel, not CANCELLED (finished before the cancel?)"
scancel "$merge_id"
log "shard 1 cancelled with $(find "$WORK/cancelled-store" -name 'chunk-000001.parquet' | wc -l) parts stored"
wait_audit "$shards_id" "the other shards"
scripts="$WORK/cancelled/slurm"
again_id="$(sbatch --parsable --array=1 "$scripts/shards.sbatch")"
again_id="${again_id%%;*}"
remerge_id="$(sbatch --parsable --dependency="afterok:$again_id" "$scripts/merge.sbatch")"
remerge_id="${remerge_id%%;*}"
wait_audit "$again_id" "the resubmitted shard"
require_all_completed "$again_id" "the resubmitted shard"
grep -q "resuming" "$scripts/shard-1.out" || fail "the resubmitted shard did not resume (no 'resuming' in its log)"
wait_audit "$remerge_id" "the second merge"
require_all_completed "$remerge_id" "the second merge"
require_same_tables "$WORK/cancelled" "the audit with a cancelled and resubmitted shard"
log "cancelled + resubmitted shard: tables identical to the single run, $((SECONDS - started))s"

# --- 3. cancelled mid-run, resubmitted, resumed -----------------------------------------------
# A task that computes chunks one by one and skips those already on disk, like a shard over a
# store. The first run is cancelled after two chunks; the resubmitted job must compute only the
# rest and finish.
cat > "$JOBS/resumable.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
for chunk in \$(seq 1 $RESUME_CHUNKS); do
  [ -f "chunk-\$chunk" ] && continue
  sleep 1
  echo "chunk \$chunk" > "chunk-\$chunk.tmp" && mv "chunk-\$chunk.tmp" "chunk-\$chunk"
  echo "job \$SLURM_JOB_ID computed chunk \$chunk" >> computed.log
done
EOF
chmod +x "$JOBS/resumable.sh"

first_id="$(sbatch --parsable --job-name=resumable --chdir="$JOBS" --output="$JOBS/resumable-%j.out" "$JOBS/resumable.sh")"
deadline=$((SECONDS + JOB_TIMEOUT))
until [ -f "$JOBS/chunk-2" ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "job $first_id wrote no second chunk within ${JOB_TIMEOUT}s"
  [ "$(job_states "$first_id")" != FAILED ] || fail "job $first_id failed before its second chunk"
  sleep 0.2
done
scancel "$first_id"
wait_finished "$first_id" "the cancelled job"
[ "$(job_states "$first_id")" = CANCELLED ] \
  || fail "job $first_id is $(job_states "$first_id") after scancel, not CANCELLED"
[ ! -f "$JOBS/chunk-$RESUME_CHUNKS" ] \
  || fail "job $first_id finished every chunk before scancel reached it (the test cancelled nothing)"
# What is on disk once the cancelled job is gone is what the resubmission may skip.
missing_after_cancel=0
for chunk in $(seq 1 "$RESUME_CHUNKS"); do
  [ -f "$JOBS/chunk-$chunk" ] || missing_after_cancel=$((missing_after_cancel + 1))
done
log "job $first_id cancelled with $((RESUME_CHUNKS - missing_after_cancel)) of $RESUME_CHUNKS chunks on disk"

second_id="$(sbatch --parsable --job-name=resumable --chdir="$JOBS" --output="$JOBS/resumable-%j.out" "$JOBS/resumable.sh")"
wait_finished "$second_id" "the resubmitted job"
require_all_completed "$second_id" "the resubmitted job"
for chunk in $(seq 1 "$RESUME_CHUNKS"); do
  [ "$(cat "$JOBS/chunk-$chunk" 2>/dev/null)" = "chunk $chunk" ] || fail "chunk $chunk is missing or wrong after the resubmission"
done
done_after="$(grep -c "job $second_id " "$JOBS/computed.log" || true)"
# The resubmission computes exactly the chunks the cancel left missing: none lost, none redone.
[ "$done_after" -eq "$missing_after_cancel" ] \
  || fail "job $second_id computed $done_after chunks, but $missing_after_cancel were missing after the cancel"
log "cancel + resubmit: ok (job $second_id computed the remaining $done_after chunks) after ${SECONDS}s"
