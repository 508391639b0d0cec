# Lock-free backend tests (docs/lockfree.md); included by tests/CMakeLists.txt.
#
#   lockfree_stress/<backend>           one class, cache_depth 0, many threads,
#                                       zp_trim alongside, canaries, conservation
#   {memcheck,helgrind,drd}/lockfree_stress/<b>
#                                       the same, small, under valgrind: only in
#                                       a -DZP_VALGRIND=ON build, where the
#                                       hand-offs are annotated (label "valgrind")
#   bench_backend_path                  not a test: backend-path ns/op, by hand
find_program(ZP_VALGRIND_EXE valgrind)
set(ZP_LF_STRESS_ITERS "1000000" CACHE STRING "Iterations per thread of test_lockfree_stress")
set(ZP_LF_VALGRIND_ITERS "2000" CACHE STRING "Iterations per thread of test_lockfree_stress under valgrind")

foreach(t test_lockfree_stress bench_backend_path)
  add_executable(${t} ${t}.c)
  target_link_libraries(${t} PRIVATE zp_test_harness)
  target_compile_definitions(${t} PRIVATE _GNU_SOURCE)
  target_compile_options(${t} PRIVATE ${ZP_WARNINGS})
endforeach()

# tsan.supp matters only in a -fsanitize=thread build; harmless elsewhere.
set(ZP_LF_TSAN_OPTIONS "halt_on_error=1 second_deadlock_stack=1 suppressions=${CMAKE_CURRENT_SOURCE_DIR}/tsan.supp")
foreach(b ${ZP_BACKEND_NAMES})
  add_test(NAME lockfree_stress/${b} COMMAND test_lockfree_stress ${b} ${ZP_LF_STRESS_ITERS})
  set_tests_properties(lockfree_stress/${b} PROPERTIES LABELS "unit;stress;${b}" TIMEOUT ${ZP_TEST_TIMEOUT}
    ENVIRONMENT "TSAN_OPTIONS=${ZP_LF_TSAN_OPTIONS}")
  # Under valgrind only in an annotated build: without ZP_VALGRIND the
  # lock-free hand-offs are invisible to helgrind/DRD.  Label "race" (and
  # "memcheck") too, so the valgrind test preset runs them.
  if(ZP_VALGRIND_TESTS)
    set(vg ${ZP_VALGRIND_EXE} -q --error-exitcode=1 --suppressions=${CMAKE_CURRENT_SOURCE_DIR}/lockfree.supp)
    add_test(NAME memcheck/lockfree_stress/${b}
      COMMAND ${vg} --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
              $<TARGET_FILE:test_lockfree_stress> ${b} ${ZP_LF_VALGRIND_ITERS} 3)
    set_tests_properties(memcheck/lockfree_stress/${b} PROPERTIES
      LABELS "valgrind;memcheck;${b}" TIMEOUT 900)
    foreach(tool helgrind drd)
      add_test(NAME ${tool}/lockfree_stress/${b}
        COMMAND ${vg} --tool=${tool} $<TARGET_FILE:test_lockfree_stress> ${b} ${ZP_LF_VALGRIND_ITERS} 3)
      set_tests_properties(${tool}/lockfree_stress/${b} PROPERTIES
        LABELS "valgrind;race;${tool};${b}" TIMEOUT 900)
    endforeach()
  endif()
endforeach()
