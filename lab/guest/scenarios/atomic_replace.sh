# Scenario "atomic_replace": the selftests' atomic replace (test-livepatch.sh,
# Linux 6.1). test_klp_livepatch.ko patches cmdline_proc_show();
# test_klp_atomic_replace.ko patches meminfo_proc_show() and sets .replace from its
# module parameter `replace` before it enables the patch.
#
# 1. With replace=0 it stacks: both patches stay enabled. It is then disabled and
#    unloaded.
# 2. With replace=1 it is cumulative: it unpatches and frees test_klp_livepatch,
#    so /proc/cmdline reads as unpatched again.
# Before each load, `livepatch-tui check --module` judges the module file
# (check_stacking, check_cumulative; the latter with --replace, since the file
# cannot show what the parameter does).
set -eu
. /lab/lib.sh
. /lab/versions.sh
trap stop_tool EXIT

LIVEPATCH=test_klp_livepatch
REPLACE=test_klp_atomic_replace

# proc_patched FILE: 1 if /proc/FILE reads "this has been live patched", else 0.
proc_patched() {
	if grep -q 'this has been live patched' "/proc/$1"; then echo 1; else echo 0; fi
}

start_tool

load_module "$LIVEPATCH"
wait_patched "$LIVEPATCH"

check_module "$REPLACE" check_stacking
load_module "$REPLACE" replace=0
wait_patched "$REPLACE"
note stacking_cmdline_patched "$(proc_patched cmdline)"
note stacking_meminfo_patched "$(proc_patched meminfo)"
# The tool reads sysfs every 500 ms: let it see both patches enabled before
# the next step disables one.
if [ "$LAB_TOOL" = 1 ]; then
	wait_until 5 "an inventory with $REPLACE enabled in the tool's log" \
		tool_logged inventory "\"name\": *\"$REPLACE\", *\"enabled\": *true, *\"transition\": *false" || true
fi
note stacking_done_s "$(now_s)"
disable_patch "$REPLACE"
unload_module "$REPLACE"

# The file has replace = 0 whatever the parameter: --replace gives the value
# that the parameter will set.
check_module "$REPLACE" check_cumulative --replace
note cumulative_begin_s "$(now_s)"
load_module "$REPLACE" replace=1
wait_patched "$REPLACE"
wait_until 10 "$LIVEPATCH to be freed" patch_gone "$LIVEPATCH" ||
	fail "$LIVEPATCH is still in sysfs after $REPLACE replaced it"
note cumulative_cmdline_patched "$(proc_patched cmdline)"
note cumulative_meminfo_patched "$(proc_patched meminfo)"
check_loaded check_after

# Give the tool time to see that test_klp_livepatch is gone (it reads sysfs every
# 500 ms) before it stops.
if [ "$LAB_TOOL" = 1 ]; then
	wait_until 5 "a patch_removed event for $LIVEPATCH in the tool's log" \
		tool_logged patch_removed "\"patch\": *\"$LIVEPATCH\"" || true
fi
stop_tool

unload_module "$LIVEPATCH"
disable_patch "$REPLACE"
unload_module "$REPLACE"
