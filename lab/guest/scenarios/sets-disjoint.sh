# Scenario "sets-disjoint" (replace-set kernel): lab_set1_v1 (replace set 1,
# /proc/cmdline and /proc/loadavg) and lab_set2 (replace set 2, /proc/version)
# patch different functions, so both stay enabled side by side, and the
# validator finds nothing wrong.
set -eu
. /lab/lib.sh
. /lab/replace_sets.sh
trap 'stop_tool; unload_lab_patches' EXIT

start_tool

load_module lab_set1_v1
wait_patched lab_set1_v1
load_module lab_set2
wait_patched lab_set2

for patch in lab_set1_v1 lab_set2; do
	note "${patch}_replace_set" "$(sysfs_value $patch replace_set)"
	note "${patch}_enabled" "$(sysfs_value $patch enabled)"
done
note_proc cmdline
note_proc loadavg
note_proc version

wait_tool_listed lab_set1_v1 lab_set2
if [ "$LAB_TOOL" = 1 ]; then
	run_check check
	run_check check-json --format json
fi
stop_tool
