# The test harness refuses what it cannot run: a misspelt backend, test or
# scale exits 2 with the usage instead of passing with nothing run.
# Run as: cmake -DEXE=<a test binary> -DBACKEND=<a registered backend>
#               -DTEST=<one of its tests> -P harness_usage.cmake
include(${CMAKE_CURRENT_LIST_DIR}/expect.cmake)

expect(2 "unknown backend: no-such-backend" ${EXE} no-such-backend)
expect(2 "bad scale: 1x" ${EXE} ${BACKEND} 1x)
expect(2 "bad scale: 0" ${EXE} ${BACKEND} 0)
expect(2 "bad scale: -1" ${EXE} ${BACKEND} -1)
expect(2 "unknown test: no_such_test" ${EXE} ${BACKEND} 1 no_such_test)
expect(2 "too many arguments" ${EXE} ${BACKEND} 1 ${TEST} extra)
expect(0 "${TEST}" ${EXE} --help)
expect(0 "ok +${BACKEND}/${TEST}" ${EXE} ${BACKEND} 0.01 ${TEST})
