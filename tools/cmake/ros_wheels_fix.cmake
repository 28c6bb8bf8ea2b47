# Included into every CMake project of the workspace (CMAKE_PROJECT_INCLUDE) when the
# ROS 2 packages come from PyPI wheels instead of a ROS install.
#
# The *_msgs wheels export CMake targets whose INTERFACE_INCLUDE_DIRECTORIES name paths of
# the machine that built the wheels (its Python and numpy include directories). CMake's
# generate step rejects imported targets with non-existent include paths, so at the end of
# configure we drop those paths from every imported target. Nothing in the venv changes.
function(_us_drop_missing_include_dirs)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    set(_dropped FALSE)
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      else()
        set(_dropped TRUE)
      endif()
    endforeach()
    if(_dropped)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _us_drop_missing_include_dirs)
