/*
 * zp_lockfree_urcu_qsbr.c - the QSBR trial ("lockfree-urcu-qsbr"): the
 * backend of zp_lockfree_urcu_flavour.h on liburcu's QSBR flavour.  The
 * reasons, and what it costs, are in that header and in docs/findings.md
 * (question 4).  Built only with -DZP_URCU_TRIALS=ON.
 */
#define ZP_LF_URCU_FLAVOUR ZP_URCU_QSBR
#include "zp_lockfree_urcu_flavour.h"
