/*
 * test_use_after_put.c - a caller that writes to a buffer after putting it
 * back.  Pools normally hide this from sanitizers (the memory stays
 * mapped); in debug-checks builds zeropool poisons idle buffers, so this
 * program must be stopped by AddressSanitizer ("use-after-poison") or
 * reported by memcheck ("Invalid write").  CTest expects exactly that.
 *
 *     test_use_after_put BACKEND [idle|freed]
 *
 * idle (the default): the buffer waits in the pool.  freed: an 8 KiB
 * buffer the pool did not keep, back in the page arena (lib/zp_arena.h),
 * which poisons its free slots itself.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "zeropool.h"

int main(int argc, char **argv)
{
	zp_config c;
	zp_config_init(&c);
	c.backend = argc > 1 ? argv[1] : NULL;
	bool freed = argc > 2 && strcmp(argv[2], "freed") == 0;
	if (freed) {
		c.cache_depth = 0;
		c.max_per_class = 1; /* of two buffers put, one is freed */
	}
	zp_pool *p = zp_pool_create(&c);
	if (p == NULL)
		return 2;
	zp_buf *b = zp_get(p, freed ? 8192 : 1000);
	zp_buf *other = freed ? zp_get(p, 8192) : NULL;
	if (b == NULL || (freed && other == NULL))
		return 2;
	unsigned char *data = b->data;
	unsigned char *other_data = freed ? other->data : NULL;
	zp_put(p, b);
	if (freed) {
		zp_put(p, other);
		/* the store kept one of the two: take it back, then the bug
		 * is a write to the one that was freed */
		zp_buf *kept = zp_get(p, 8192);
		if (kept == NULL)
			return 2;
		if (kept->data == data)
			data = other_data;
	}
	data[10] = 42; /* the bug: the buffer belongs to the pool again */
	printf("use after put went unnoticed\n");
	zp_pool_destroy(p);
	return 0;
}
