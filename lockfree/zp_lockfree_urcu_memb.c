/*
 * zp_lockfree_urcu_memb.c - the memb trial ("lockfree-urcu-memb"): the
 * backend of zp_lockfree_urcu_flavour.h on liburcu's memb flavour, the
 * backend's flavour until issue 24 (it aborts the process when membarrier
 * is refused after start-up).  docs/findings.md, question 4.  Built only
 * with -DZP_URCU_TRIALS=ON.
 */
#define ZP_LF_URCU_FLAVOUR ZP_URCU_MEMB
#include "zp_lockfree_urcu_flavour.h"
