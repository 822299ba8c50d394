# Scenario "sets-replace" (replace-set kernel): with lab_set1_v1 (set 1) and
# lab_set2 (set 2) enabled, loading lab_set1_v2 (set 1) replaces lab_set1_v1
# only. lab_set1_v2 patches /proc/cmdline but not /proc/loadavg, so the
# kernel's nop function brings the original /proc/loadavg back, while
# lab_set2 keeps serving /proc/version.
set -eu
. /lab/lib.sh
. /lab/replace_sets.sh
trap 'stop_tool; unload_lab_patches' EXIT

start_tool

load_module lab_set1_v1
wait_patched lab_set1_v1
load_module lab_set2
wait_patched lab_set2
wait_tool_listed lab_set1_v1 lab_set2
if [ "$LAB_TOOL" = 1 ]; then
	run_check verdict-v2 --module "$MODULE_DIR/lab_set1_v2.ko"
	run_check verdict-v2-json --format json --module "$MODULE_DIR/lab_set1_v2.ko"
fi

started=$(now_ms)
load_module lab_set1_v2
wait_patched lab_set1_v2
note patch_ms $(($(now_ms) - started))

# The kernel frees a replaced patch, and with it its sysfs directory, from a
# work item after the transition.
if wait_until 10 "lab_set1_v1 freed" patch_gone lab_set1_v1; then
	note lab_set1_v1_gone 1
else
	note lab_set1_v1_gone 0
fi
note patches "$(ls "$LIVEPATCH_SYSFS" | tr '\n' ' ')"
note lab_set1_v2_replace_set "$(sysfs_value lab_set1_v2 replace_set)"
note lab_set2_enabled "$(sysfs_value lab_set2 enabled)"
note lab_set2_transition "$(sysfs_value lab_set2 transition)"
note_proc cmdline
note_proc loadavg
note_proc version

# The replaced patch's module no longer holds a reference, so it unloads.
unload_module lab_set1_v1
note lab_set1_v1_unloaded 1

wait_tool_event patch_removed lab_set1_v1
wait_tool_listed lab_set1_v2 lab_set2
if [ "$LAB_TOOL" = 1 ]; then
	run_check check
fi
stop_tool
