# Scenario "sets-conflict" (replace-set kernel): while lab_set2 (set 2,
# version_proc_show) and lab_set1_v1 (set 1, cmdline_proc_show and
# loadavg_proc_show) are enabled, the kernel rejects lab_set2_conflict (set 2),
# which patches version_proc_show of its own set, allowed, and
# cmdline_proc_show of set 1, not allowed. It also rejects lab_set3_state
# (set 3), which uses the klp_state id of set 1. `livepatch-tui check --module`
# runs before each insmod and must predict the rejection.
set -eu
. /lab/lib.sh
. /lab/replace_sets.sh
trap 'stop_tool; unload_lab_patches' EXIT

start_tool

load_module lab_set2
wait_patched lab_set2
load_module lab_set1_v1
wait_patched lab_set1_v1
wait_tool_listed lab_set2 lab_set1_v1

for module in lab_set2_conflict lab_set3_state; do
	if [ "$LAB_TOOL" = 1 ]; then
		run_check "verdict-$module" --module "$MODULE_DIR/$module.ko"
		run_check "verdict-$module-json" --format json --module "$MODULE_DIR/$module.ko"
	fi
	try_load_module "$module"
	if [ -e "$LIVEPATCH_SYSFS/$module" ]; then
		note "${module}_in_sysfs" 1
	else
		note "${module}_in_sysfs" 0
	fi
	wait_tool_event patch_load_failed "$module"
done

note lab_set1_v1_enabled "$(sysfs_value lab_set1_v1 enabled)"
note lab_set2_enabled "$(sysfs_value lab_set2 enabled)"
note_proc cmdline
note_proc version
note_proc meminfo
stop_tool
