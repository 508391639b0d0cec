/*
 * zp_fork.h - the list of live pools that the pthread_atfork handlers walk
 * (zp_fork.c).
 */
#ifndef ZP_FORK_H
#define ZP_FORK_H

#include "zp_maintain.h"

/* Put a new pool on the list, installing the handlers on first use.
 * Returns 0, or -1 with errno ENOMEM (pthread_atfork failed). */
int _zp_fork_track(zp_pool *pool);

/* Take a pool off the list (first thing in zp_pool_destroy). */
void _zp_fork_untrack(zp_pool *pool);

#endif /* ZP_FORK_H */
