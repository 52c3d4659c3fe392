# Shared build helpers: warning flags and the test declaration.

# medsettle_warnings(<target>): the project's warning set; errors in CI.
function(medsettle_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wconversion -Wno-sign-conversion -Wno-missing-field-initializers -Wnon-virtual-dtor -Wimplicit-fallthrough)
  # GCC 12 reports false -Wrestrict positives on std::string concatenation
  # at -O2 and above (GCC bug 105651); the warning stays on elsewhere.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(MEDSETTLE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# medsettle_test(<name> SOURCES ... LIBS ... [LABELS ...]): one GoogleTest
# executable registered with CTest; labels name the kind (unit, redis, grpc).
function(medsettle_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  medsettle_warnings(${name})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${name} PRIVATE
    MEDSETTLE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  gtest_discover_tests(${name} PROPERTIES LABELS "${T_LABELS}" DISCOVERY_TIMEOUT 60)
endfunction()
