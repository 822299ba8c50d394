# Scenario "target_module": livepatches loaded before the modules they patch. The
# kernel patches an object when its module loads, and unpatches it when the module
# goes away.
#
# First the selftests' "target module after livepatch" (test-callbacks.sh, Linux
# 6.1): test_klp_callbacks_demo.ko has objects for vmlinux, test_klp_callbacks_mod
# (callbacks only) and test_klp_callbacks_busy (busymod_work_func). The busy module
# is never loaded here: its init waits for busymod_work_func() to start, and the
# patched version never signals that.
# Then versions_a.ko before its target versions_target.ko, with calls once the
# target is loaded.
#
# Steps, each ending with a one-shot check (check_<step>), the kernel's `patched`
# attribute of each object (<step>_<object>_patched) and its time (<step>_s):
#   demo         test_klp_callbacks_demo loads with neither target module loaded
#   mod          test_klp_callbacks_mod loads
#   going        test_klp_callbacks_mod is removed again
#   pair_patch   versions_a loads without versions_target
#   pair_target  versions_target loads
set -eu
. /lab/lib.sh
. /lab/versions.sh
trap stop_tool EXIT

DEMO=test_klp_callbacks_demo
MOD=test_klp_callbacks_mod
BUSY=test_klp_callbacks_busy
CALLS=40

# latest_inventory_shows OBJECT PATCHED: whether the tool's latest inventory lists
# OBJECT with "patched" equal to PATCHED (true or false).
latest_inventory_shows() {
	grep '"kind": *"inventory"' "$OUT/jsonl" | tail -n 1 |
		grep -q "\"name\": *\"$1\", *\"patched\": *$2"
}

# wait_tool_inventory OBJECT PATCHED: waits up to 5 s for latest_inventory_shows.
wait_tool_inventory() {
	[ "$LAB_TOOL" = 1 ] || return 0
	wait_until 5 "an inventory with $1 patched: $2 in the tool's log" \
		latest_inventory_shows "$1" "$2" || true
}

# step NAME PATCH OBJECT...: notes the kernel's view of each OBJECT of PATCH and
# runs the one-shot check.
step() {
	local name="$1" patch="$2" object
	shift 2
	for object in "$@"; do
		note "${name}_${object}_patched" "$(cat "$LIVEPATCH_SYSFS/$patch/$object/patched")"
	done
	check_loaded "check_$name"
	note "${name}_s" "$(now_s)"
}

start_tool --calls-interval 1

check_module "$DEMO" check_module
load_module "$DEMO"
wait_patched "$DEMO"
wait_tool_inventory "$MOD" false
step demo "$DEMO" "$MOD" "$BUSY"

load_module "$MOD"
wait_tool_inventory "$MOD" true
step mod "$DEMO" "$MOD" "$BUSY"

unload_module "$MOD"
wait_tool_inventory "$MOD" false
step going "$DEMO" "$MOD" "$BUSY"

disable_patch "$DEMO"
unload_module "$DEMO"

check_module versions_a check_pair
load_module versions_a
wait_patched versions_a
wait_tool_inventory versions_target false
step pair_patch versions_a versions_target

load_module versions_target
wait_tool_inventory versions_target true
step pair_target versions_a versions_target

# Calls to the function that loaded after its patch, once the tool counts them
# (its counters are kprobes on the replacement and on the original).
wait_counting pair_target versions_a_func versions_target_func
note kprobes "$(grep -c 'versions_' "$KPROBE_LIST" || true)"
before=$(tally_snapshot)
note calls_begin_s "$(now_s)"
versions_call "$CALLS"
note calls "$CALLS"
tally_notes calls "$before"
sleep 2
note calls_end_s "$(now_s)"

stop_tool

disable_patch versions_a
unload_module versions_a
unload_module versions_target
