/*
 * test_use_after_put.c - a caller that writes to a buffer after putting it
 * back.  Pools normally hide this from sanitizers (the memory stays
 * mapped); in debug-checks builds zeropool poisons idle buffers, so this
 * program must be stopped by AddressSanitizer ("use-after-poison") or
 * reported by memcheck ("Invalid write").  CTest expects exactly that.
 */
#include <stdio.h>

#include "zeropool.h"

int main(int argc, char **argv)
{
	zp_config c;
	zp_config_init(&c);
	c.backend = argc > 1 ? argv[1] : NULL;
	zp_pool *p = zp_pool_create(&c);
	if (p == NULL)
		return 2;
	zp_buf *b = zp_get(p, 1000);
	if (b == NULL)
		return 2;
	unsigned char *data = b->data;
	zp_put(p, b);
	data[10] = 42; /* the bug: the buffer belongs to the pool again */
	printf("use after put went unnoticed\n");
	zp_pool_destroy(p);
	return 0;
}
