# mpi.bash - shared by the data-parallel tests (sourced): the e2e helpers,
# and `ranks N CMD...` to run CMD as N MPI ranks on this machine.
source "$(dirname "${BASH_SOURCE[0]}")/../../e2e/lib/common.bash"
command -v mpirun >/dev/null || { echo "mpirun not found (apt-get install openmpi-bin)"; exit 77; }
# CI and these machines run as root, which Open MPI refuses unless told;
# containers often forbid the cross-memory-attach copy of the shared-memory
# transport, so ranks on one host copy through the shared segment instead.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
SAME=$SRC/tests/dist/lib/same_run.py

# ranks N CMD...: CMD as N ranks (N = 1: plainly, without mpirun); one
# thread each, not bound to cores, more ranks than cores allowed
ranks() {
    local n=$1
    shift
    if [ "$n" -eq 1 ]; then "$@"; else mpirun -np "$n" --bind-to none --oversubscribe "$@"; fi
}

# same RUN_A RUN_B WHAT: the two runs' losses and adapters agree (same_run.py)
same() {
    if python3 "$SAME" "$1" "$2" >"$T/same.out" 2>&1; then ok; else bad "$3"; fi
    sed "s|^|   $3: |" "$T/same.out"
}
