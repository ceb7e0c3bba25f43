#!/bin/bash
{{ sbatch }}
#
# nasrun batch job, rendered by `nasrun submit` from the template {{ template }}.
#
# Runs `nasrun run SPEC` on every task, or `nasrun resume DIR` when the experiment already has a
# checkpoint. Before the time limit SLURM sends SIGUSR1 to this batch shell (--signal=B:USR1):
# the shell forwards it to the launcher (srun and mpirun both pass SIGUSR1 on to every rank), rank
# 0 of nasrun checkpoints and the run exits with 75 ("checkpointed, resume me"). This shell then
# submits this same script again (a new job that resumes), at most max_resubmits times in a chain,
# unless `nasrun cancel` left the cancel marker. Exit 0 (finished) or any other code ends the chain.
# Every job appends JSON lines (start, exit, resubmitted) to <experiment dir>/slurm-jobs.json.
#
# Write your own template by copying this file: keep the placeholders in double braces; their
# values are already shell-quoted.

NASRUN_SLURM_SPEC={{ spec }}
NASRUN_SLURM_DIR={{ experiment_dir }}
NASRUN_SLURM_WORKDIR={{ workdir }}
NASRUN_SLURM_SCRIPT={{ script }}
NASRUN_SLURM_JOB_NAME={{ job_name }}
NASRUN_SLURM_MAX_RESUBMITS={{ max_resubmits }}
NASRUN_SLURM_RESUBMIT="${NASRUN_SLURM_RESUBMIT:-0}"  # set by the job that resubmitted this one
NASRUN_SLURM_CHAIN="$NASRUN_SLURM_DIR"/{{ chain_file }}
NASRUN_SLURM_CANCELLED="$NASRUN_SLURM_DIR"/{{ cancel_marker }}
NASRUN_SLURM_CHECKPOINT="$NASRUN_SLURM_DIR"/{{ checkpoint_file }}
NASRUN_SLURM_NASRUN=({{ nasrun }})

{{ setup }}

nasrun_slurm_event() {  # EVENT JOB_ID RESUBMIT [EXTRA JSON FIELDS]: one line in the chain file
  printf '{"event": "%s", "job_id": "%s", "resubmit": %d, "time": "%s"%s}\n' \
    "$1" "$2" "$3" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${4:-}" >> "$NASRUN_SLURM_CHAIN"
}

cd "$NASRUN_SLURM_WORKDIR" || exit 1
mkdir -p "$NASRUN_SLURM_DIR" || exit 1
[[ "$NASRUN_SLURM_RESUBMIT" =~ ^[0-9]+$ ]] || NASRUN_SLURM_RESUBMIT=0
NASRUN_SLURM_JOB="${SLURM_JOB_ID:-0}"

if [ "$NASRUN_SLURM_RESUBMIT" -gt 0 ] && [ -e "$NASRUN_SLURM_CANCELLED" ]; then
  echo "nasrun: the chain was cancelled (nasrun cancel); not starting"
  nasrun_slurm_event skipped "$NASRUN_SLURM_JOB" "$NASRUN_SLURM_RESUBMIT"
  exit 0
fi
nasrun_slurm_event start "$NASRUN_SLURM_JOB" "$NASRUN_SLURM_RESUBMIT"

if [ -e "$NASRUN_SLURM_CHECKPOINT" ]; then
  set -- resume "$NASRUN_SLURM_DIR"{{ resume_args }}
else
  set -- run "$NASRUN_SLURM_SPEC"
fi
echo "nasrun: job $NASRUN_SLURM_JOB ($NASRUN_SLURM_JOB_NAME), resubmission $NASRUN_SLURM_RESUBMIT of at most $NASRUN_SLURM_MAX_RESUBMITS: ${NASRUN_SLURM_NASRUN[*]} $*"

# The launcher runs in the background so that this shell can run its USR1 trap at once (bash runs
# traps only between commands, and `wait` returns early when one fires).
nasrun_slurm_pid=
nasrun_slurm_signalled=0
nasrun_slurm_forward() {
  nasrun_slurm_signalled=1
  echo "nasrun: SIGUSR1 (time limit near or preemption): forwarding to the launcher"
  [ -n "$nasrun_slurm_pid" ] && kill -USR1 "$nasrun_slurm_pid" 2>/dev/null
}
trap nasrun_slurm_forward USR1
"${NASRUN_SLURM_NASRUN[@]}" "$@" &
nasrun_slurm_pid=$!
rc=0
while kill -0 "$nasrun_slurm_pid" 2>/dev/null; do
  wait "$nasrun_slurm_pid"
  rc=$?
done
# the launcher may have ended while a trap interrupted `wait`: bash still holds its status
wait "$nasrun_slurm_pid" 2>/dev/null
last=$?
[ "$last" != 127 ] && rc=$last
trap - USR1

nasrun_slurm_event exit "$NASRUN_SLURM_JOB" "$NASRUN_SLURM_RESUBMIT" ", \"code\": $rc, \"signalled\": $nasrun_slurm_signalled"
echo "nasrun: exit code $rc"
if [ "$rc" = 75 ]; then
  if [ -e "$NASRUN_SLURM_CANCELLED" ]; then
    echo "nasrun: checkpointed; the chain was cancelled, not resubmitting"
  elif [ "$NASRUN_SLURM_RESUBMIT" -ge "$NASRUN_SLURM_MAX_RESUBMITS" ]; then
    echo "nasrun: checkpointed; max_resubmits ($NASRUN_SLURM_MAX_RESUBMITS) reached, not resubmitting"
    nasrun_slurm_event limit "$NASRUN_SLURM_JOB" "$NASRUN_SLURM_RESUBMIT"
  else
    next=$((NASRUN_SLURM_RESUBMIT + 1))
    # afterany: the new job starts only once this one has ended (one writer per experiment)
    if new=$(sbatch --parsable --dependency="afterany:$NASRUN_SLURM_JOB" \
          --export="ALL,NASRUN_SLURM_RESUBMIT=$next" "$NASRUN_SLURM_SCRIPT"); then
      new="${new%%;*}"
      echo "nasrun: checkpointed; resubmitted as job $new (resubmission $next)"
      nasrun_slurm_event resubmitted "$new" "$next" ", \"after\": \"$NASRUN_SLURM_JOB\""
    else
      echo "nasrun: checkpointed, but sbatch failed; resume by hand: nasrun submit SPEC" >&2
    fi
  fi
fi
exit "$rc"
