// SPDX-License-Identifier: GPL-2.0
/*
 * Livepatch in replace set 2: replaces version_proc_show(), which no
 * patch of set 1 touches, and modifies state LAB_STATE_SET2.
 */

#include "replace_set.h"

static int lab_set2_version_show(struct seq_file *m, void *v)
{
	return lab_show_patch_name(m);
}

static struct klp_func funcs[] = {
	{
		.old_name = "version_proc_show",
		.new_func = lab_set2_version_show,
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
		.id = LAB_STATE_SET2,
		.version = 1,
	},
	{ }
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
	.states = states,
	.replace_set = 2,
};

static int lab_set2_init(void)
{
	return klp_enable_patch(&patch);
}

static void lab_set2_exit(void)
{
}

module_init(lab_set2_init);
module_exit(lab_set2_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("Replace set 2: /proc/version");
