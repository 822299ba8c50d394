# Scenario "sample": the kernel's livepatch sample, enabled and then disabled with
# the tool running. livepatch-sample.ko replaces cmdline_proc_show() in vmlinux, so
# /proc/cmdline reads "this has been live patched" while it is enabled.
set -eu
. /lab/lib.sh
trap stop_tool EXIT

PATCH=livepatch_sample

start_tool

started=$(now_ms)
load_module livepatch-sample
wait_patched "$PATCH"
note patch_ms $(($(now_ms) - started))
note cmdline_patched "$(cat /proc/cmdline)"

# The tool's inventory comes from sysfs reads after it has processed the probe
# events. Give it up to 5 s to list the patch, so that disabling the patch does not
# race with that read.
tool_listed_patch() {
	grep '"kind": *"inventory"' "$OUT/jsonl" | grep -q "\"name\": *\"$PATCH\""
}
if [ "$LAB_TOOL" = 1 ]; then
	waited=$(now_ms)
	wait_until 5 "an inventory that lists $PATCH in the tool's log" tool_listed_patch || true
	note inventory_wait_ms $(($(now_ms) - waited))
fi

started=$(now_ms)
disable_patch "$PATCH"
note unpatch_ms $(($(now_ms) - started))
unload_module "$PATCH"

# Give the tool up to 5 s to notice that the patch is gone before stopping it.
if [ "$LAB_TOOL" = 1 ]; then
	waited=$(now_ms)
	wait_until 5 "a patch_removed event in the tool's log" \
		grep -q '"kind": *"patch_removed"' "$OUT/jsonl" || true
	note removal_wait_ms $(($(now_ms) - waited))
fi
stop_tool
