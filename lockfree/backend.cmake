# The lock-free backends (docs/lockfree.md): one per library found.
#   lockfree-ck    Concurrency Kit ck_stack (DWCAS pop)      pkg-config: ck
#   lockfree-urcu  liburcu cds_lfs + call_rcu (mb flavour)    pkg-config: liburcu-mb liburcu-cds
# Without the packages the build goes on with the other backends.

# zp_lockfree_urcu.c is compiled once per liburcu flavour, the flavour named
# by -DZP_LF_URCU_FLAVOUR.  One target cannot compile a source twice with
# other definitions, so each flavour is an object library of its own, listed
# in ZP_BACKEND_OBJECT_LIBRARIES: lib/CMakeLists.txt compiles it as it
# compiles the library's own objects and puts its objects in the library.
macro(zp_urcu_flavour flavour name symbol)
  string(TOUPPER ${flavour} zp_urcu_define)
  add_library(zeropool_urcu_${flavour} OBJECT ${CMAKE_CURRENT_LIST_DIR}/zp_lockfree_urcu.c)
  target_compile_definitions(zeropool_urcu_${flavour} PRIVATE ZP_LF_URCU_FLAVOUR=ZP_URCU_${zp_urcu_define})
  list(APPEND ZP_BACKEND_OBJECT_LIBRARIES zeropool_urcu_${flavour})
  list(APPEND ZP_BACKEND_NAMES ${name})
  list(APPEND ZP_BACKEND_SYMBOLS ${symbol})
endmacro()

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

pkg_check_modules(ZP_URCU IMPORTED_TARGET liburcu-mb liburcu-cds)
if(ZP_URCU_FOUND)
  zp_urcu_flavour(mb lockfree-urcu _zp_backend_lockfree_urcu)
  list(APPEND ZP_BACKEND_LIBRARIES PkgConfig::ZP_URCU)
  list(APPEND ZP_BACKEND_PC_REQUIRES liburcu-mb liburcu-cds)
else()
  message(STATUS "lockfree-urcu not built: pkg-config modules liburcu-mb liburcu-cds (liburcu-dev) not found")
endif()

# The flavour trials (docs/findings.md, question 4): the liburcu backend
# built again on liburcu's memb, bp and QSBR flavours, as
# "lockfree-urcu-memb", "lockfree-urcu-bp" and "lockfree-urcu-qsbr".  Off by
# default: memb and bp abort the process when membarrier(2) is refused after
# start-up, and a library cannot rely on its callers' threads to announce
# QSBR's quiescent states (so that trial goes online and offline around
# every call).
option(ZP_URCU_TRIALS "Also build the liburcu flavour trials lockfree-urcu-{memb,bp,qsbr}" OFF)
if(ZP_URCU_TRIALS)
  pkg_check_modules(ZP_URCU_T IMPORTED_TARGET liburcu-memb liburcu-bp liburcu-qsbr liburcu-cds)
  if(ZP_URCU_T_FOUND)
    foreach(flavour memb bp qsbr)
      zp_urcu_flavour(${flavour} lockfree-urcu-${flavour} _zp_backend_lockfree_urcu_${flavour})
    endforeach()
    list(APPEND ZP_BACKEND_LIBRARIES PkgConfig::ZP_URCU_T)
    list(APPEND ZP_BACKEND_PC_REQUIRES liburcu-memb liburcu-bp liburcu-qsbr)
  else()
    message(FATAL_ERROR "ZP_URCU_TRIALS=ON needs pkg-config modules liburcu-memb liburcu-bp liburcu-qsbr liburcu-cds (liburcu-dev)")
  endif()
endif()
