/*
 * zp_config.h - validation of a zp_config (zp_config.c; the defaults are
 * zp_config_init in zeropool.h).
 */
#ifndef ZP_CONFIG_H
#define ZP_CONFIG_H

#include "zeropool.h"

/* 0 if cfg is valid, else -1 with errno EINVAL. */
int _zp_config_check(const zp_config *cfg);

#endif /* ZP_CONFIG_H */
