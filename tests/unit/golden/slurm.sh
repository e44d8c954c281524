#!/bin/bash
# kindslurm batch script for run 20261125-000000-abcdef; rendered from slurm.sh.j2.
#SBATCH --job-name=kindslurm-ks-alice
#SBATCH --output=/home/alice/.local/share/kindslurm/jobs/20261125-000000-abcdef/slurm.out
#SBATCH --chdir=/home/alice/proj
#SBATCH --time=00:20:00
#SBATCH --nodes=1
#SBATCH --signal=B:USR1@60
#SBATCH --partition=debug
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --exclusive

# The node side runs in the background so that a signal interrupts `wait` and
# is forwarded at once (bash runs traps only between commands).
set -u
export KINDSLURM_RUN_ID=20261125-000000-abcdef
/usr/bin/python3 -m kindslurm node-run /home/alice/.local/share/kindslurm/jobs/20261125-000000-abcdef/spec.json &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -INT "$child" 2>/dev/null' INT
trap 'kill -USR1 "$child" 2>/dev/null' USR1
while :; do
  wait "$child"
  rc=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$rc"
