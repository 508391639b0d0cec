/*
 * zp_lockfree_urcu_qsbr.c - the QSBR trial ("lockfree-urcu-qsbr"): the
 * backend of zp_lockfree_urcu_flavour.h on liburcu's QSBR flavour instead
 * of memb.  The reasons, and what it costs, are in that header and in
 * docs/findings.md (question 4).  Built only with -DZP_URCU_QSBR=ON.
 */
#define ZP_LF_URCU_QSBR 1
#include "zp_lockfree_urcu_flavour.h"
