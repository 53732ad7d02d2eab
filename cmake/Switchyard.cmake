# Helpers that build each library and test twice: plain, and with ASan+UBSan (the `_san`
# variant, which `make test` also runs). With clang the sanitized variant carries libFuzzer's
# coverage instrumentation too, so fuzz targets link against it.

set(SWITCHYARD_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer)
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  set(SWITCHYARD_SAN_COMPILE_FLAGS ${SWITCHYARD_SAN_FLAGS} -fsanitize=fuzzer-no-link)
else()
  set(SWITCHYARD_SAN_COMPILE_FLAGS ${SWITCHYARD_SAN_FLAGS})
endif()

# switchyard_library(NAME SOURCES ... DEPS ... [SAN_DEPS ...])
# DEPS are our own libraries (their _san twins are used for the sanitized variant) followed by
# external ones after the keyword EXTERNAL.
function(switchyard_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;EXTERNAL" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} ${ARG_EXTERNAL})
  if(SWITCHYARD_MUTANTS)
    target_compile_definitions(${name} PUBLIC SWITCHYARD_MUTANTS=1)
  endif()
  if(SWITCHYARD_SANITIZED)
    set(san_deps "")
    foreach(dep ${ARG_DEPS})
      list(APPEND san_deps ${dep}_san)
    endforeach()
    add_library(${name}_san STATIC ${ARG_SOURCES})
    target_include_directories(${name}_san PUBLIC ${PROJECT_SOURCE_DIR})
    target_compile_options(${name}_san PRIVATE ${SWITCHYARD_SAN_COMPILE_FLAGS})
    target_link_options(${name}_san PUBLIC ${SWITCHYARD_SAN_FLAGS})
    target_link_libraries(${name}_san PUBLIC ${san_deps} ${ARG_EXTERNAL})
    if(SWITCHYARD_MUTANTS)
      target_compile_definitions(${name}_san PUBLIC SWITCHYARD_MUTANTS=1)
    endif()
  endif()
endfunction()

# switchyard_test(NAME SOURCES ... DEPS ... [EXTERNAL ...] [LABELS ...] [NO_SAN])
# Registers every GoogleTest case with ctest; the sanitized twin runs under label "san".
function(switchyard_test name)
  cmake_parse_arguments(ARG "NO_SAN" "" "SOURCES;DEPS;EXTERNAL;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} ${ARG_EXTERNAL} GTest::gtest GTest::gtest_main
                        GTest::gmock rapidcheck)
  gtest_discover_tests(${name} TEST_PREFIX "${name}." PROPERTIES LABELS "unit;${ARG_LABELS}"
                       DISCOVERY_TIMEOUT 60)
  if(SWITCHYARD_SANITIZED AND NOT ARG_NO_SAN)
    set(san_deps "")
    foreach(dep ${ARG_DEPS})
      list(APPEND san_deps ${dep}_san)
    endforeach()
    add_executable(${name}_san ${ARG_SOURCES})
    target_compile_options(${name}_san PRIVATE ${SWITCHYARD_SAN_COMPILE_FLAGS})
    target_link_options(${name}_san PRIVATE ${SWITCHYARD_SAN_FLAGS})
    target_link_libraries(${name}_san PRIVATE ${san_deps} ${ARG_EXTERNAL} GTest::gtest
                          GTest::gtest_main GTest::gmock rapidcheck)
    gtest_discover_tests(${name}_san TEST_PREFIX "${name}_san." PROPERTIES LABELS "san;${ARG_LABELS}"
                         DISCOVERY_TIMEOUT 60)
  endif()
endfunction()
