# Scenario "reverse": a patching transition held by a sleeping task is reversed
# by writing 0 to enabled, as an administrator would to back out a patch that
# cannot finish.
#
# Linux 6.1's enabled_store() calls klp_reverse_transition() for the patch in
# transition: the target becomes unpatched and the transition restarts, but
# nothing completes it at once. The retry work that the held transition had
# scheduled (about once a second) finds the held kworker already unpatched, as
# it never switched, switches every other task back and completes the
# transition, all while busymod_work_func() is still held. The kernel then
# frees the patch, as after any disable.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

PATCH=test_klp_callbacks_demo
RELEASE=/sys/module/test_klp_callbacks_busy/parameters/block_transition
MARKER="lab: reverse: patch loaded"

start_tool

load_module test_klp_callbacks_busy block_transition=Y
kmsg "reverse: patch loaded"
load_module "$PATCH"
patch_transition_is "$PATCH" 1 || fail "transition of $PATCH is not in progress after loading it"

# Let the kernel retry at least once, so the reversal happens in a transition
# that the retry work carries.
wait_until 10 "a second check of the held kworker" \
	dmesg_count_at_least 2 "$MARKER" "is sleeping on function busymod_work_func" ||
	fail "the kernel did not retry the held transition"

note reversed_at_s "$(now_s)"
reversed=$(now_ms)
echo "% echo 0 > $LIVEPATCH_SYSFS/$PATCH/enabled"
echo 0 > "$LIVEPATCH_SYSFS/$PATCH/enabled" || fail "writing 0 to enabled during the transition failed"
note enabled_after_reversal "$(cat "$LIVEPATCH_SYSFS/$PATCH/enabled" 2>/dev/null || echo gone)"

if wait_until 10 "the kernel to free $PATCH after the reversal" patch_gone "$PATCH"; then
	note freed_while_held 1
	note reversal_to_freed_ms $(($(now_ms) - reversed))
else
	note freed_while_held 0
fi

note released_at_s "$(now_s)"
kmsg "releasing busymod_work_func"
echo N > "$RELEASE"
wait_until 20 "$PATCH freed" patch_gone "$PATCH" || fail "$PATCH still loaded after the release"
unload_module "$PATCH"
unload_module test_klp_callbacks_busy

stop_tool
