# The io_uring module (docs/uring.md): provided-buffer rings fed from a pool
# class.  A library of its own, zeropool_uring, so that liburing stays out
# of the core library's dependencies for users who do not want it.  Built
# when pkg-config finds liburing (Debian: liburing-dev) and ZP_URING is ON;
# everything else builds and passes without it.
pkg_check_modules(ZP_URING_PC IMPORTED_TARGET liburing)
if(NOT ZP_URING_PC_FOUND)
  message(STATUS "zeropool_uring not built: pkg-config module liburing (liburing-dev) not found")
  return()
endif()
message(STATUS "zeropool_uring: built against liburing ${ZP_URING_PC_VERSION}")

add_library(zeropool_uring SHARED ${CMAKE_CURRENT_LIST_DIR}/zp_uring.c)
set_target_properties(zeropool_uring PROPERTIES VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR} C_VISIBILITY_PRESET hidden)
target_compile_definitions(zeropool_uring PRIVATE _GNU_SOURCE)
target_compile_options(zeropool_uring PRIVATE ${ZP_WARNINGS})
# The public header includes <liburing.h> and its users call liburing
# (io_uring_queue_init, ...): liburing is a public dependency, the
# pkg-config target in the build tree, the library it names once installed
# (zeropool-uring.pc requires liburing).
target_link_libraries(zeropool_uring PUBLIC zeropool $<BUILD_INTERFACE:PkgConfig::ZP_URING_PC>
  $<INSTALL_INTERFACE:${ZP_URING_PC_LINK_LIBRARIES}>)
add_library(zeropool::zeropool_uring ALIAS zeropool_uring)

install(FILES ${PROJECT_SOURCE_DIR}/lib/include/zeropool_uring.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS zeropool_uring EXPORT zeropoolTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
file(RELATIVE_PATH ZP_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig" "${CMAKE_INSTALL_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/zeropool-uring.pc.in
  ${CMAKE_CURRENT_BINARY_DIR}/zeropool-uring.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/zeropool-uring.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The example: an echo server on loopback over a buffer ring (--help).
add_executable(zp_uring_echo ${CMAKE_CURRENT_LIST_DIR}/zp_uring_echo.c)
target_compile_definitions(zp_uring_echo PRIVATE _GNU_SOURCE)
target_compile_options(zp_uring_echo PRIVATE ${ZP_WARNINGS})
target_link_libraries(zp_uring_echo PRIVATE zeropool_uring Threads::Threads)
if(BUILD_TESTING)
  add_test(NAME uring_echo COMMAND zp_uring_echo --entries 16 --buf-size 1024 --self-test 20)
  set_tests_properties(uring_echo PROPERTIES LABELS "unit;uring" TIMEOUT 60 SKIP_RETURN_CODE 77)
  add_test(NAME uring_echo_cli
    COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:zp_uring_echo> -P ${PROJECT_SOURCE_DIR}/tests/uring_echo_cli.cmake)
  set_tests_properties(uring_echo_cli PROPERTIES LABELS "unit;uring" TIMEOUT 60
    SKIP_REGULAR_EXPRESSION "io_uring refused")
endif()
