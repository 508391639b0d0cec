# The mutex-sharded backend: always built, no dependency beyond pthreads.
list(APPEND ZP_BACKEND_SOURCES ${CMAKE_CURRENT_LIST_DIR}/zp_locked.c)
list(APPEND ZP_BACKEND_NAMES locked)
