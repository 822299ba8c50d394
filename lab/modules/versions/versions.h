/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by versions_target.ko and its livepatches.
 *
 * versions_target_func() returns the version of the code that ran: 0 for the
 * original, and each livepatch's replacement returns its own number. The target
 * counts calls per returned version, so the lab can compare the tool's call
 * counts with what actually ran.
 *
 * versions_target_hold() is patched too. A task that sleeps in it, or in a
 * replacement of it, blocks the transition of the next patch. On command it calls
 * versions_target_func() from there, so those calls come from a task that has not
 * switched yet.
 */
#ifndef VERSIONS_H
#define VERSIONS_H

#include <linux/completion.h>
#include <linux/compiler.h>
#include <linux/wait.h>

/* Versions that versions_target_func() and its replacements return. */
#define VERSIONS_ORIGINAL 0
#define VERSIONS_A 1
#define VERSIONS_B 2
#define VERSIONS_CUMULATIVE 3
#define VERSIONS_COUNT 4

enum versions_hold_command {
	VERSIONS_HOLD_IDLE,
	/* Call versions_target_func() hold->calls times, then wait again. */
	VERSIONS_HOLD_CALL,
	/* Return from versions_target_hold(). */
	VERSIONS_HOLD_RELEASE,
};

/* The holding task's mailbox, owned by versions_target.ko. */
struct versions_hold {
	wait_queue_head_t wait;
	/* An enum versions_hold_command, set back to IDLE by the holding task. */
	int command;
	unsigned int calls;
	/* Completed by the holder after each command. */
	struct completion done;
	/* Calls versions_target_func() count times from the holding task. */
	void (*call)(unsigned int count);
};

/*
 * Serves commands until VERSIONS_HOLD_RELEASE or a signal. Inlined, so that
 * the holding task sleeps in the frame of the patched function that calls it
 * and the kernel's stack check finds that function.
 */
static __always_inline int versions_hold_serve(struct versions_hold *hold)
{
	int command;

	for (;;) {
		if (wait_event_interruptible(hold->wait,
					     READ_ONCE(hold->command) != VERSIONS_HOLD_IDLE))
			return -EINTR;

		command = READ_ONCE(hold->command);
		if (command == VERSIONS_HOLD_CALL)
			hold->call(hold->calls);

		WRITE_ONCE(hold->command, VERSIONS_HOLD_IDLE);
		complete(&hold->done);
		if (command == VERSIONS_HOLD_RELEASE)
			return 0;
	}
}

#endif /* VERSIONS_H */
