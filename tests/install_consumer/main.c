/* A user's program: built against the installed zeropool package. */
#include <stdio.h>
#include <string.h>

#include <zeropool.h>

int main(void)
{
	zp_pool *pool = zp_pool_create(NULL);
	if (pool == NULL) {
		perror("zp_pool_create");
		return 1;
	}
	zp_buf *b = zp_get(pool, 4096);
	if (b == NULL || b->len != 4096 || b->cap < 4096)
		return 1;
	memcpy(b->data, "hello", 6);
	if (zp_put(pool, b) != 0)
		return 1;
	struct zp_stats st;
	zp_stats(pool, &st);
	printf("%s: %llu get(s), %llu put(s)\n", zp_backend_name(pool), (unsigned long long)st.gets,
	       (unsigned long long)st.puts);
	zp_pool_destroy(pool);
	return st.gets == 1 && st.puts == 1 ? 0 : 1;
}
