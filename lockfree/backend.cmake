# The lock-free backends (docs/lockfree.md): one per library found.
#   lockfree-ck    Concurrency Kit ck_stack (DWCAS pop)      pkg-config: ck
#   lockfree-urcu  liburcu cds_lfs + call_rcu (memb flavour)  pkg-config: liburcu-memb liburcu-cds
# Without the packages the build goes on with the other backends.
pkg_check_modules(ZP_CK IMPORTED_TARGET ck)
if(ZP_CK_FOUND)
  list(APPEND ZP_BACKEND_SOURCES ${CMAKE_CURRENT_LIST_DIR}/zp_lockfree_ck.c)
  list(APPEND ZP_BACKEND_LIBRARIES PkgConfig::ZP_CK)
  list(APPEND ZP_BACKEND_PC_REQUIRES ck)
  list(APPEND ZP_BACKEND_NAMES lockfree-ck)
  list(APPEND ZP_BACKEND_SYMBOLS _zp_backend_lockfree_ck)
else()
  message(STATUS "lockfree-ck not built: pkg-config module ck (libck-dev) not found")
endif()

pkg_check_modules(ZP_URCU IMPORTED_TARGET liburcu-memb liburcu-cds)
if(ZP_URCU_FOUND)
  list(APPEND ZP_BACKEND_SOURCES ${CMAKE_CURRENT_LIST_DIR}/zp_lockfree_urcu.c)
  list(APPEND ZP_BACKEND_LIBRARIES PkgConfig::ZP_URCU)
  list(APPEND ZP_BACKEND_PC_REQUIRES liburcu-memb liburcu-cds)
  list(APPEND ZP_BACKEND_NAMES lockfree-urcu)
  list(APPEND ZP_BACKEND_SYMBOLS _zp_backend_lockfree_urcu)
else()
  message(STATUS "lockfree-urcu not built: pkg-config modules liburcu-memb liburcu-cds (liburcu-dev) not found")
endif()
