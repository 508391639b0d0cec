/* A consumer of the installed io_uring module (zeropool-uring.pc). */
#include <stdio.h>

#include <zeropool_uring.h>

int main(void)
{
	zp_pool *pool = zp_pool_create(NULL);
	int ok = pool != NULL && zp_uring_bufring_held(NULL) == 0 &&
		 zp_uring_bufring_create(NULL, pool, 0, 8, 512, 0) == NULL;
	zp_pool_destroy(pool);
	puts(ok ? "uring consumer ok" : "uring consumer FAILED");
	return ok ? 0 : 1;
}
