/*
 * zp_lockfree_urcu_bp.c - the bulletproof trial ("lockfree-urcu-bp"): the
 * backend of zp_lockfree_urcu_flavour.h on liburcu's bp flavour, the one
 * liburcu meant for libraries (it registers threads itself and survives
 * fork through hooks); it aborts the process when membarrier is refused
 * after start-up.  docs/findings.md, question 4.  Built only with
 * -DZP_URCU_TRIALS=ON.
 */
#define ZP_LF_URCU_FLAVOUR ZP_URCU_BP
#include "zp_lockfree_urcu_flavour.h"
