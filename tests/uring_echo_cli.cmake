# zp_uring_echo's command line and its bound: bad values exit 2, --duration
# stops an idle server, and a stop in the middle of a self-test (1-byte
# buffers keep it busy for longer than a second anywhere) cancels every
# request and leaves no buffer outside the pool.
# Run as: cmake -DEXE=<zp_uring_echo> -P uring_echo_cli.cmake
include(${CMAKE_CURRENT_LIST_DIR}/expect.cmake)

expect(0 "--duration S" ${EXE} --help)
expect(2 "unknown option --bogus" ${EXE} --bogus 1)
expect(2 "missing value for --entries" ${EXE} --entries)
expect(2 "bad value for --port" ${EXE} --port 65536)
expect(2 "bad value for --duration" ${EXE} --duration 0)
expect(2 "bad value for --self-test" ${EXE} --self-test -3)
expect(2 "not a power of two: --entries" ${EXE} --entries 3)
execute_process(COMMAND ${EXE} --duration 1 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 77)
  message(STATUS "io_uring refused: ${out}${err}") # SKIP_REGULAR_EXPRESSION
  return()
endif()
if(NOT rc EQUAL 0 OR NOT "${out}${err}" MATCHES "1 s passed: stopping"
   OR NOT "${out}" MATCHES " 0 buffers outstanding\n")
  message(FATAL_ERROR "an idle server with --duration 1: exit ${rc}\n${out}${err}")
endif()
# stdout first, then stderr
expect(1 " 0 buffers outstanding, client FAILED\n.*1 s passed: stopping"
       ${EXE} --self-test 50 --entries 1 --buf-size 1 --duration 1)
