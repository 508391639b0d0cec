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

# The QSBR trial (docs/findings.md, question 4): the liburcu backend built
# again with liburcu's QSBR flavour, as "lockfree-urcu-qsbr".  Off by
# default: a library cannot rely on its callers' threads to announce
# quiescent states, so the trial goes online and offline around every call.
option(ZP_URCU_QSBR "Also build the QSBR trial backend lockfree-urcu-qsbr" OFF)
if(ZP_URCU_QSBR)
  pkg_check_modules(ZP_URCU_Q IMPORTED_TARGET liburcu-qsbr liburcu-cds)
  if(ZP_URCU_Q_FOUND)
    list(APPEND ZP_BACKEND_SOURCES ${CMAKE_CURRENT_LIST_DIR}/zp_lockfree_urcu_qsbr.c)
    list(APPEND ZP_BACKEND_LIBRARIES PkgConfig::ZP_URCU_Q)
    list(APPEND ZP_BACKEND_PC_REQUIRES liburcu-qsbr)
    list(APPEND ZP_BACKEND_NAMES lockfree-urcu-qsbr)
    list(APPEND ZP_BACKEND_SYMBOLS _zp_backend_lockfree_urcu_qsbr)
  else()
    message(FATAL_ERROR "ZP_URCU_QSBR=ON needs pkg-config modules liburcu-qsbr liburcu-cds (liburcu-dev)")
  endif()
endif()
