# The backend contract test (lib/zp_backend.h); included by tests/CMakeLists.txt.
#
#   backend_contract/<backend>           each backend's ops driven directly,
#                                        against a model of every descriptor
#   memcheck/backend_contract/<backend>  the same, small, under valgrind memcheck
#
# It calls the registry's hidden functions (_zp_backend_find, _zp_backend_check,
# _zp_backend_usable), which the shared library does not export: it links the
# static library, and builds the harness source itself rather than linking
# zp_test_harness, which would bring in the shared library (a second copy).
add_executable(test_backend_contract test_backend_contract.c zp_test.c)
target_link_libraries(test_backend_contract PRIVATE zeropool_static Threads::Threads)
target_include_directories(test_backend_contract PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/lib)
target_compile_definitions(test_backend_contract PRIVATE _GNU_SOURCE)
target_compile_options(test_backend_contract PRIVATE ${ZP_WARNINGS})

foreach(b ${ZP_BACKEND_NAMES})
  add_test(NAME backend_contract/${b} COMMAND test_backend_contract ${b} ${ZP_TEST_SCALE})
  set_tests_properties(backend_contract/${b} PROPERTIES LABELS "unit;${b}" TIMEOUT ${ZP_TEST_TIMEOUT})
  if(ZP_VALGRIND_TESTS)
    add_test(NAME memcheck/backend_contract/${b}
      COMMAND ${ZP_MEMCHECK} $<TARGET_FILE:test_backend_contract> ${b} ${ZP_VALGRIND_SCALE})
    set_tests_properties(memcheck/backend_contract/${b} PROPERTIES LABELS "memcheck;${b}" TIMEOUT 300)
  endif()
endforeach()
