#!/bin/sh
# The container's entrypoint: fill in WORKERS, then exec the command (python main serve),
# which becomes PID 1 itself. SIGTERM (docker stop, a rolling update) therefore reaches
# Sanic's main process directly: it stops accepting, lets every worker finish the requests
# in flight, and exits 0.
set -eu

# CPUs this container may use: the CPUs it may run on (nproc honours a cpuset), capped by
# a CFS quota (docker --cpus, compose cpus:, a Kubernetes CPU limit), rounded down, at
# least 1. os.cpu_count() sees the host's CPUs and would start too many workers.
container_cpus() {
    cgroup=${BOOKSHELF_CGROUP_ROOT:-/sys/fs/cgroup}
    n=$(nproc)
    quota=max
    period=100000
    if [ -r "$cgroup/cpu.max" ]; then                  # cgroup v2
        read -r quota period < "$cgroup/cpu.max"
    elif [ -r "$cgroup/cpu/cpu.cfs_quota_us" ]; then   # cgroup v1
        read -r quota < "$cgroup/cpu/cpu.cfs_quota_us"
        read -r period < "$cgroup/cpu/cpu.cfs_period_us"
    fi
    if [ "$quota" != max ] && [ "$quota" -gt 0 ] && [ "$period" -gt 0 ]; then
        limit=$((quota / period))
        [ "$limit" -ge 1 ] || limit=1
        [ "$limit" -lt "$n" ] && n=$limit
    fi
    echo "$n"
}

if [ -z "${WORKERS:-}" ] || [ "$WORKERS" = auto ]; then
    WORKERS=$(container_cpus)
    export WORKERS
fi
exec "$@"
