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

# switchyard_library(NAME SOURCES ... DEPS ... [EXTERNAL ...] [SIM_TWIN | SIM_ONLY])
# DEPS are our own libraries (their _san twins are used for the sanitized variant) followed by
# external ones after the keyword EXTERNAL.
#
# Mutants (DESIGN.md sections 2 and 7) exist only in the simulator's build, which is compiled
# with SWITCHYARD_MUTANTS defined and with our namespace renamed (`switchyard` becomes
# `switchyard_sim`), so it links into the same binary as the production build without one
# symbol in common: `serve` runs code in which every mutant check is a constant false.
#   SIM_TWIN: also build NAME_sim, the simulator's build of a production library.
#   SIM_ONLY: the library exists only for the simulator; NAME itself is the simulator's build.
# Sanitized twins carry SWITCHYARD_MUTANTS (they link no production code).
function(switchyard_library name)
  cmake_parse_arguments(ARG "SIM_TWIN;SIM_ONLY" "" "SOURCES;DEPS;EXTERNAL" ${ARGN})
  set(sim_deps "")
  foreach(dep ${ARG_DEPS})
    get_property(twin GLOBAL PROPERTY SWITCHYARD_SIM_TWIN_${dep})
    if(twin)
      list(APPEND sim_deps ${dep}_sim)
    else()
      list(APPEND sim_deps ${dep})
    endif()
  endforeach()
  set(sim_definitions SWITCHYARD_MUTANTS=1 switchyard=switchyard_sim)
  if(ARG_SIM_ONLY)
    add_library(${name} STATIC ${ARG_SOURCES})
    target_compile_definitions(${name} PUBLIC ${sim_definitions})
    target_link_libraries(${name} PUBLIC ${sim_deps} ${ARG_EXTERNAL})
  else()
    add_library(${name} STATIC ${ARG_SOURCES})
    target_link_libraries(${name} PUBLIC ${ARG_DEPS} ${ARG_EXTERNAL})
  endif()
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  if(ARG_SIM_TWIN)
    set_property(GLOBAL PROPERTY SWITCHYARD_SIM_TWIN_${name} TRUE)
    add_library(${name}_sim STATIC ${ARG_SOURCES})
    target_include_directories(${name}_sim PUBLIC ${PROJECT_SOURCE_DIR})
    target_compile_definitions(${name}_sim PUBLIC ${sim_definitions})
    target_link_libraries(${name}_sim PUBLIC ${sim_deps} ${ARG_EXTERNAL})
  endif()
  if(SWITCHYARD_SANITIZED)
    set(san_deps "")
    foreach(dep ${ARG_DEPS})
      list(APPEND san_deps ${dep}_san)
    endforeach()
    add_library(${name}_san STATIC ${ARG_SOURCES})
    target_include_directories(${name}_san PUBLIC ${PROJECT_SOURCE_DIR})
    target_compile_options(${name}_san PRIVATE ${SWITCHYARD_SAN_COMPILE_FLAGS})
    target_compile_definitions(${name}_san PUBLIC SWITCHYARD_MUTANTS=1)
    target_link_options(${name}_san PUBLIC ${SWITCHYARD_SAN_FLAGS})
    target_link_libraries(${name}_san PUBLIC ${san_deps} ${ARG_EXTERNAL})
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
