# Scenario "force": two held transitions ended with `echo 1 > force`.
#
# Linux 6.1's klp_force_transition() switches every task that has not switched
# (klp_update_patch_state() on each) and the next retry completes the
# transition. It marks patches forced only where the consistency model can no
# longer protect their code: the patch being removed when the target is
# unpatched, or the patches being replaced by a cumulative patch. A forced
# patch's module is never released (klp_free_patch_finish() skips module_put()),
# so it cannot be removed until reboot.
#
# Part 1 forces the patching transition of test_klp_callbacks_demo, held by the
# busy kworker. That patch is not cumulative, so the kernel marks nothing
# forced and the module can be removed afterwards.
#
# Part 2 forces the unpatching transition of lab_force_patch, held by
# lab_kthread sleeping inside the patch's replacement of lab_hold(). The kernel
# marks the patch forced, frees it when the transition completes and keeps
# lab_force_patch.ko loaded until the guest powers off. No other scenario loads
# that module, so this scenario may run at any position, but once per boot.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

DEMO=test_klp_callbacks_demo
DEMO_RELEASE=/sys/module/test_klp_callbacks_busy/parameters/block_transition
FORCE_PATCH=lab_force_patch
FORCE_HOLD=/sys/module/lab_force_patch/parameters/hold

# force PATCH: writes 1 to the patch's force attribute.
force() {
	echo "% echo 1 > $LIVEPATCH_SYSFS/$1/force"
	echo 1 > "$LIVEPATCH_SYSFS/$1/force" || fail "writing 1 to $1/force failed"
}

# try_rmmod NAME: whether rmmod NAME succeeds within 3 s.
try_rmmod() {
	echo "% rmmod $1"
	wait_until 3 "rmmod $1" rmmod "$1" 2>/dev/null
}

start_tool

# Part 1: a forced patching transition.
load_module test_klp_callbacks_busy block_transition=Y
kmsg "force: $DEMO loaded"
load_module "$DEMO"
wait_until 10 "a second check of the held kworker" \
	dmesg_count_at_least 2 "lab: force: $DEMO loaded" "is sleeping on function busymod_work_func" ||
	fail "the kernel did not retry the held transition of $DEMO"
note patching_forced_at_s "$(now_s)"
force "$DEMO"
wait_patched "$DEMO" 10
echo N > "$DEMO_RELEASE"
disable_patch "$DEMO"
if try_rmmod "$DEMO"; then
	note patching_module_removed 1
else
	note patching_module_removed 0
	note patching_module_refcnt "$(cat /sys/module/$DEMO/refcnt)"
fi
unload_module test_klp_callbacks_busy

# Part 2: a forced unpatching transition.
load_module lab_kthread_target hold=N
load_module "$FORCE_PATCH"
wait_patched "$FORCE_PATCH" 20
# The thread enters lab_hold() every 100 ms, now the replacement, and stays.
echo Y > "$FORCE_HOLD"
sleep 1
kmsg "force: disabling $FORCE_PATCH"
echo "% echo 0 > $LIVEPATCH_SYSFS/$FORCE_PATCH/enabled"
echo 0 > "$LIVEPATCH_SYSFS/$FORCE_PATCH/enabled" || fail "disabling $FORCE_PATCH failed"
wait_until 10 "a second check of lab_kthread" \
	dmesg_count_at_least 2 "lab: force: disabling $FORCE_PATCH" "is sleeping on function lab_hold" ||
	fail "the kernel did not retry the held unpatching transition"
note unpatching_forced_at_s "$(now_s)"
force "$FORCE_PATCH"
wait_until 10 "$FORCE_PATCH freed" patch_gone "$FORCE_PATCH" || fail "$FORCE_PATCH not freed after the force"
if try_rmmod "$FORCE_PATCH"; then
	note unpatching_module_removed 1
else
	note unpatching_module_removed 0
	note unpatching_module_refcnt "$(cat /sys/module/$FORCE_PATCH/refcnt)"
fi
# The module stays loaded, so its code stays valid: let the thread leave the
# replacement, then remove the target, which stops the thread.
echo N > "$FORCE_HOLD" 2>/dev/null || true
unload_module lab_kthread_target

# Give the tool a sysfs refresh to see the patches gone.
if [ "$LAB_TOOL" = 1 ]; then
	wait_until 5 "a patch_removed event for $FORCE_PATCH" \
		tool_logged patch_removed "\"patch\": *\"$FORCE_PATCH\"" || true
fi
stop_tool
