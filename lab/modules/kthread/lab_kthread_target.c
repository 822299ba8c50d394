// SPDX-License-Identifier: GPL-2.0
/*
 * Target module of the lab's "kthread" and "force" scenarios.
 *
 * It starts one kernel thread, "lab_kthread", that calls lab_hold() in a loop.
 * While the parameter "hold" is set, lab_hold() sleeps in steps of 100 ms and
 * does not return, so a livepatch of lab_hold() cannot switch this thread: the
 * kernel finds lab_hold() on its stack at every retry of the transition.
 * Clearing the parameter lets lab_hold() return; the thread then sleeps in its
 * own loop, outside lab_hold(), and switches at the next retry.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/err.h>
#include <linux/kthread.h>
#include <linux/module.h>

static bool hold = true;
module_param(hold, bool, 0644);
MODULE_PARM_DESC(hold, "keep the thread inside lab_hold() (default: Y)");

static struct task_struct *thread;

/* noinline keeps lab_hold() a function of its own, which a livepatch can name. */
static noinline void lab_hold(void)
{
	while (READ_ONCE(hold) && !kthread_should_stop())
		msleep_interruptible(100);
}

static int lab_kthread_fn(void *data)
{
	pr_info("thread started\n");
	while (!kthread_should_stop()) {
		lab_hold();
		msleep_interruptible(100);
	}
	return 0;
}

static int __init lab_kthread_target_init(void)
{
	thread = kthread_run(lab_kthread_fn, NULL, "lab_kthread");
	return PTR_ERR_OR_ZERO(thread);
}

static void __exit lab_kthread_target_exit(void)
{
	kthread_stop(thread);
}

module_init(lab_kthread_target_init);
module_exit(lab_kthread_target_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Lab target: a kernel thread that sleeps inside lab_hold() on request");
