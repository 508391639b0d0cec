# Install the build tree into a scratch prefix, then build and run a
# consumer with find_package(zeropool) and another with pkg-config.
file(REMOVE_RECURSE ${WORK})
set(PREFIX ${WORK}/prefix)
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
run(${CMAKE_COMMAND} --install ${BIN} --prefix ${PREFIX})
run(${CMAKE_COMMAND} -S ${SRC}/tests/install_consumer -B ${WORK}/build -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${PREFIX} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK}/build)
set(ENV{LD_LIBRARY_PATH} ${PREFIX}/lib)
run(${WORK}/build/consumer_cmake)
run(${WORK}/build/consumer_static)
# pkg-config: the same source with the flags zeropool.pc gives.
find_program(PKGCONF pkg-config REQUIRED)
file(GLOB pcdir ${PREFIX}/lib*/pkgconfig)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
execute_process(COMMAND ${PKGCONF} --cflags --libs zeropool OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not know zeropool")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run(cc ${SRC}/tests/install_consumer/main.c -o ${WORK}/consumer_pc ${flags} -Wl,-rpath,${PREFIX}/lib)
run(${WORK}/consumer_pc)
# The io_uring module, where it was built: the same with zeropool-uring.pc.
if(EXISTS ${pcdir}/zeropool-uring.pc)
  execute_process(COMMAND ${PKGCONF} --cflags --libs zeropool-uring OUTPUT_VARIABLE flags
                  RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config does not know zeropool-uring")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(cc ${SRC}/tests/install_consumer/uring_main.c -o ${WORK}/consumer_uring_pc ${flags}
      -Wl,-rpath,${PREFIX}/lib)
  run(${WORK}/consumer_uring_pc)
endif()
