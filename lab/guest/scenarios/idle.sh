# Scenario "idle": the per-CPU idle tasks (swapper/N, pid 0) take part in every
# transition. They are not in /proc, so only the probes see them switch: by the
# stack check while their CPU runs something else, or in the idle loop
# (klp_update_patch_state() in do_idle()) after the transition code wakes an
# idle CPU. The lab VM has two CPUs, so swapper/0 and swapper/1 must both switch
# in the patching and in the unpatching transition of livepatch-sample.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

PATCH=livepatch_sample

start_tool
note cpus "$(grep -c '^processor' /proc/cpuinfo)"

load_module livepatch-sample
wait_patched "$PATCH"
disable_patch "$PATCH"
unload_module "$PATCH"

stop_tool
