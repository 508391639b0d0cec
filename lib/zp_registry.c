/*
 * zp_registry.c - the built-in backends, selected by name.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zp_backend.h"

static const struct zp_backend_ops *const registry[] = {
    &_zp_backend_locked,
#ifdef ZP_HAVE_LOCKFREE_CK
    &_zp_backend_lockfree_ck,
#endif
#ifdef ZP_HAVE_LOCKFREE_URCU
    &_zp_backend_lockfree_urcu,
#endif
};

#define NREG (sizeof registry / sizeof registry[0])

const struct zp_backend_ops *_zp_backend_find(const char *name)
{
	for (size_t i = 0; i < NREG; i++)
		if (strcmp(registry[i]->name, name) == 0)
			return registry[i];
	return NULL;
}

/* cfg->backend, else $ZP_BACKEND, else the build default; NULL/ENOENT
 * when the name is not registered. */
const struct zp_backend_ops *_zp_backend_resolve(const char *name)
{
	if (name == NULL) {
		name = getenv("ZP_BACKEND");
		if (name == NULL || name[0] == '\0')
			name = ZP_DEFAULT_BACKEND;
	}
	const struct zp_backend_ops *ops = _zp_backend_find(name);
	if (ops == NULL)
		errno = ENOENT;
	return ops;
}

size_t zp_backend_count(void)
{
	return NREG;
}

const char *zp_backend_at(size_t i)
{
	return i < NREG ? registry[i]->name : NULL;
}

const char *zp_default_backend(void)
{
	return ZP_DEFAULT_BACKEND;
}
