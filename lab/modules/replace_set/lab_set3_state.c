// SPDX-License-Identifier: GPL-2.0
/*
 * Livepatch in replace set 3 that the kernel must reject while a patch
 * of set 1 is enabled: its function is free, but it uses state id
 * LAB_STATE_SET1, which belongs to set 1.
 */

#include "replace_set.h"

static int lab_set3_state_meminfo_show(struct seq_file *m, void *v)
{
	return lab_show_patch_name(m);
}

static struct klp_func funcs[] = {
	{
		.old_name = "meminfo_proc_show",
		.new_func = lab_set3_state_meminfo_show,
	},
	{ }
};

static struct klp_object objs[] = {
	{
		/* An object without a name is vmlinux. */
		.funcs = funcs,
	}, { }
};

static struct klp_state states[] = {
	{
		.id = LAB_STATE_SET1,
		.version = 1,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.states = states,
	.replace_set = 3,
};

static int lab_set3_state_init(void)
{
	return klp_enable_patch(&patch);
}

static void lab_set3_state_exit(void)
{
}

module_init(lab_set3_state_init);
module_exit(lab_set3_state_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Replace set 3, rejected: uses the klp_state id of set 1");
