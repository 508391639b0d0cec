# expect(RC REGEX COMMAND...): run COMMAND, fail the calling script unless it
# exits RC and its stdout and stderr together match REGEX.  include()d by
# the cmake -P scripts that check a program's command line.
function(expect want_rc want_text)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "${want_rc}")
    message(FATAL_ERROR "${ARGN}: exit ${rc}, want ${want_rc}\n${out}${err}")
  endif()
  if(NOT "${out}${err}" MATCHES "${want_text}")
    message(FATAL_ERROR "${ARGN}: no \"${want_text}\" in\n${out}${err}")
  endif()
endfunction()
