# Scenario "demo": the recording that `livepatch-tui demo` plays, made with
# `cargo xtask lab --record-demo`, for a person to read. The kernel's livepatch
# sample loads and completes at once. Then a patch of the busy target module is
# held for HOLD_S seconds while the kernel retries about once a second, so the
# dashboard shows the blocked kworker, the reason (sleeping_in_function
# busymod_work_func), the passes and their durations. After the release the
# transition completes, and both patches are disabled and unloaded again.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

SAMPLE=livepatch_sample
PATCH=test_klp_callbacks_demo
RELEASE=/sys/module/test_klp_callbacks_busy/parameters/block_transition
# Long enough for a viewer to read the blocked task and see passes accumulate.
HOLD_S=15

start_tool
sleep 1

load_module livepatch-sample
wait_patched "$SAMPLE"
sleep 2

load_module test_klp_callbacks_busy block_transition=Y
load_module "$PATCH"
patch_transition_is "$PATCH" 1 || fail "transition of $PATCH is not in progress after loading it"
sleep "$HOLD_S"
patch_transition_is "$PATCH" 1 || fail "transition of $PATCH ended before the release"

note released_at_s "$(now_s)"
kmsg "releasing busymod_work_func"
echo N > "$RELEASE"
wait_patched "$PATCH" 10
sleep 2

disable_patch "$PATCH"
unload_module "$PATCH"
unload_module test_klp_callbacks_busy
sleep 1
disable_patch "$SAMPLE"
unload_module livepatch-sample

# Give the tool a sysfs refresh to see both patches gone.
if [ "$LAB_TOOL" = 1 ]; then
	wait_until 5 "a patch_removed event for $SAMPLE" \
		tool_logged patch_removed "\"patch\": *\"$SAMPLE\"" || true
fi
sleep 1
stop_tool
