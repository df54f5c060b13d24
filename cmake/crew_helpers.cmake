# crew_add_library(<layer> SOURCES ... LINK ...): crew_<layer> + ALIAS crew::<layer>.
function(crew_add_library layer)
  cmake_parse_arguments(arg "" "" "SOURCES;LINK" ${ARGN})
  if(NOT arg_SOURCES)
    # a layer still without sources: headers only
    add_library(crew_${layer} INTERFACE)
    target_include_directories(crew_${layer} INTERFACE ${PROJECT_SOURCE_DIR}
                                                       ${PROJECT_SOURCE_DIR}/include)
    target_link_libraries(crew_${layer} INTERFACE ${arg_LINK})
    add_library(crew::${layer} ALIAS crew_${layer})
    return()
  endif()
  add_library(crew_${layer} STATIC ${arg_SOURCES})
  add_library(crew::${layer} ALIAS crew_${layer})
  target_include_directories(crew_${layer} PUBLIC ${PROJECT_SOURCE_DIR}
                                                  ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(crew_${layer} PUBLIC ${arg_LINK} PRIVATE crew_warnings)
endfunction()

# crew_add_test_dir(<layer> SOURCES ... LINK ... [LABELS ...]): one doctest
# binary per layer, one ctest test per TEST_CASE.
function(crew_add_test_dir layer)
  cmake_parse_arguments(arg "" "TIMEOUT" "SOURCES;LINK;LABELS" ${ARGN})
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 120)
  endif()
  add_executable(crew_${layer}_tests ${arg_SOURCES})
  target_link_libraries(crew_${layer}_tests PRIVATE crew_test_main ${arg_LINK}
                                                    crew_warnings)
  target_include_directories(crew_${layer}_tests PRIVATE ${PROJECT_SOURCE_DIR})
  set(labels ${layer})
  if(arg_LABELS)
    list(APPEND labels ${arg_LABELS})
  endif()
  doctest_discover_tests(crew_${layer}_tests
    TEST_PREFIX "${layer}: "
    PROPERTIES TIMEOUT ${arg_TIMEOUT} LABELS "${labels}"
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endfunction()
