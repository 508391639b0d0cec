# The mutex-sharded backend: always built, no dependency beyond pthreads.
list(APPEND ZP_BACKEND_SOURCES ${CMAKE_CURRENT_LIST_DIR}/zp_locked.c)
# Registration: the name users select, and at the same index the ops table
# the registry lists (CMakeLists.txt, lib/zp_backends.inc.in).
list(APPEND ZP_BACKEND_NAMES locked)
list(APPEND ZP_BACKEND_SYMBOLS _zp_backend_locked)
