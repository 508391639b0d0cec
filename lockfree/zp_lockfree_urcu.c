/*
 * zp_lockfree_urcu.c - the lock-free backend, liburcu flavour
 * ("lockfree-urcu"): the backend of zp_lockfree_urcu_flavour.h on liburcu's
 * mb flavour (why mb: that header, and docs/findings.md question 4).
 * Design, ABA and reclamation argument: docs/lockfree.md.
 */
#define ZP_LF_URCU_FLAVOUR ZP_URCU_MB
#include "zp_lockfree_urcu_flavour.h"
