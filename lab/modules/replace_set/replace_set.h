/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the replace-set livepatches. Each one replaces some of these
 * /proc show functions of vmlinux with one that prints the livepatch's module
 * name, so reading the file shows which patch serves it:
 *
 *   /proc/cmdline  cmdline_proc_show()
 *   /proc/loadavg  loadavg_proc_show()
 *   /proc/version  version_proc_show()
 *   /proc/meminfo  meminfo_proc_show()
 *
 * The lab's guest scripts use /proc/uptime for timing, so uptime_proc_show()
 * stays unpatched.
 */
#ifndef LAB_REPLACE_SET_H
#define LAB_REPLACE_SET_H

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

/* klp_state ids. Two replace sets must not use the same id. */
#define LAB_STATE_SET1 0x5e7001UL
#define LAB_STATE_SET2 0x5e7002UL

static inline int lab_show_patch_name(struct seq_file *m)
{
	seq_printf(m, "%s\n", THIS_MODULE->name);
	return 0;
}

#endif /* LAB_REPLACE_SET_H */
