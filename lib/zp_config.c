/*
 * zp_config.c - defaults that scale with the machine, and validation.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "zp_config.h"
#include "zp_os.h"

/* Idle memory a server author accepts by default: 1/64 of physical memory,
 * between 64 MiB and 1 GiB (docs/design.md, "Defaults"). */
static size_t default_idle_bytes(void)
{
	size_t b = _zp_os_physical_memory() / 64;
	size_t lo = (size_t)64 << 20, hi = (size_t)1 << 30;
	return b < lo ? lo : b > hi ? hi : b;
}

void zp_config_init(zp_config *cfg)
{
	if (cfg == NULL)
		return;
	memset(cfg, 0, sizeof *cfg);
	cfg->backend = NULL;
	cfg->min_size = 64;
	cfg->max_size = (size_t)1 << 30;
	cfg->classes_per_doubling = 4;
	cfg->cache_depth = ZP_CACHE_DEPTH_AUTO;
	cfg->batch = 0;
	cfg->cache_bytes = (size_t)4 << 20;
	cfg->max_per_class = ZP_UNBOUNDED;
	cfg->max_idle_bytes = default_idle_bytes();
	cfg->decay_ms = 10000;
	cfg->evict = ZP_EVICT_DROP_COLDEST;
	cfg->shards = 0;
	cfg->flags = 0;
}

static bool is_pow2(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

int _zp_config_check(const zp_config *cfg)
{
	bool ok =
	    cfg->min_size >= 1 && is_pow2(cfg->min_size) && cfg->classes_per_doubling >= 1 &&
	    cfg->classes_per_doubling <= ZP_MAX_CLASSES_PER_DOUBLING &&
	    is_pow2(cfg->classes_per_doubling) &&
	    cfg->min_size >= 2 * (size_t)cfg->classes_per_doubling &&
	    cfg->max_size >= cfg->min_size && cfg->max_size <= ((size_t)1 << 62) &&
	    (cfg->cache_depth <= ZP_MAX_CACHE_DEPTH || cfg->cache_depth == ZP_CACHE_DEPTH_AUTO) &&
	    (cfg->cache_depth == 0 || cfg->batch <= cfg->cache_depth) &&
	    cfg->batch <= ZP_MAX_CACHE_DEPTH && cfg->max_per_class >= 1 &&
	    (cfg->evict == ZP_EVICT_DROP_COLDEST || cfg->evict == ZP_EVICT_DROP_NEWEST) &&
	    (cfg->shards == 0 || (is_pow2(cfg->shards) && cfg->shards <= 256)) &&
	    (cfg->decay_ms == ZP_DECAY_NEVER ||
	     (cfg->decay_ms >= 0 && cfg->decay_ms <= ZP_MAX_DECAY_MS)) &&
	    (cfg->flags & ~(unsigned)ZP_F_ALL_) == 0;
	if (ok) {
		uint32_t s = (uint32_t)__builtin_ctzll(cfg->classes_per_doubling);
		uint32_t m = (uint32_t)__builtin_ctzll(cfg->min_size);
		unsigned last =
		    _zp_class_index(cfg->max_size, cfg->min_size, s, (m << s) + (1u << s) - 1);
		ok = last < ZP_MAX_CLASSES;
	}
	if (!ok) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}
