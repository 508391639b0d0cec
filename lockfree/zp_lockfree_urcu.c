/*
 * zp_lockfree_urcu.c - the lock-free backend, liburcu flavour
 * ("lockfree-urcu"): the backend of zp_lockfree_urcu_flavour.h on liburcu's
 * memb flavour.  Design, ABA and reclamation argument: docs/lockfree.md.
 */
#define ZP_LF_URCU_QSBR 0
#include "zp_lockfree_urcu_flavour.h"
