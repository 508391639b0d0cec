# The test harness refuses what it cannot run: a misspelt backend, test or
# scale exits 2 with the usage instead of passing with nothing run.
# Run as: cmake -DEXE=<a test binary> -DBACKEND=<a registered backend>
#               -DTEST=<one of its tests> -P harness_usage.cmake
function(expect want_rc want_text)
  execute_process(COMMAND ${EXE} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "${want_rc}")
    message(FATAL_ERROR "${EXE} ${ARGN}: exit ${rc}, want ${want_rc}\n${out}${err}")
  endif()
  if(NOT "${out}${err}" MATCHES "${want_text}")
    message(FATAL_ERROR "${EXE} ${ARGN}: no \"${want_text}\" in\n${out}${err}")
  endif()
endfunction()

expect(2 "unknown backend: no-such-backend" no-such-backend)
expect(2 "bad scale: 1x" ${BACKEND} 1x)
expect(2 "bad scale: 0" ${BACKEND} 0)
expect(2 "bad scale: -1" ${BACKEND} -1)
expect(2 "unknown test: no_such_test" ${BACKEND} 1 no_such_test)
expect(2 "too many arguments" ${BACKEND} 1 ${TEST} extra)
expect(0 "${TEST}" --help)
expect(0 "ok +${BACKEND}/${TEST}" ${BACKEND} 0.01 ${TEST})
