// SPDX-License-Identifier: GPL-2.0
/*
 * The livepatch of lab_kthread_patch.c under another module name, for the
 * "force" scenario. Forcing a transition to unpatched makes the kernel keep
 * the patch's module loaded until reboot (klp_free_patch_finish() skips
 * module_put() for a forced patch), so that scenario needs a module that no
 * other scenario loads.
 */
#include "lab_kthread_patch.c"
