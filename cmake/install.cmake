# `cmake --install`: the binary (bin/), its bash completion (share/bash-completion/completions/),
# configs/ and docs/ (share/minipuzzle/), the README (share/doc/minipuzzle/), and for C++ users
# the static libraries, their headers (include/minipuzzle/<folder>/...h, the include paths the
# sources use) and a CMake package:
#   find_package(minipuzzle CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE minipuzzle::mp_model)
# Two components, "runtime" (binary, configs, docs, README) and "dev" (the rest); `cpack -G DEB`
# makes a Debian package of each (cmake/package.cmake). Nothing here changes what the build builds.
include(CMakePackageConfigHelpers)

set(MP_INSTALL_DATADIR ${CMAKE_INSTALL_DATADIR}/minipuzzle)
set(MP_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/minipuzzle)

# --- runtime -----------------------------------------------------------------------------------
# Libraries linked from outside the system folders (the pip wheel's LibTorch) stay on the
# installed binary's runtime path; system ones add nothing.
set_target_properties(minipuzzle PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS minipuzzle RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/configs/ DESTINATION ${MP_INSTALL_DATADIR}/configs COMPONENT runtime)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${MP_INSTALL_DATADIR}/docs COMPONENT runtime)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
install(FILES ${MP_BASH_COMPLETION} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        COMPONENT runtime)

# PCRE2 and utf8proc found without pkg-config (the copies scripts/bundle_deps.sh puts in deps/lib)
# go with the binary, which finds them next to itself: the link name, the soname, the file.
get_property(_mp_tokenizer_libs GLOBAL PROPERTY MP_TOKENIZER_LIBS)
if(_mp_tokenizer_libs STREQUAL "bundled")
  foreach(_mp_lib ${MP_PCRE2_LIB} ${MP_UTF8PROC_LIB})
    get_filename_component(_mp_lib_dir "${_mp_lib}" DIRECTORY)
    get_filename_component(_mp_lib_name "${_mp_lib}" NAME)
    file(GLOB _mp_lib_files "${_mp_lib_dir}/${_mp_lib_name}*")
    install(FILES ${_mp_lib_files} DESTINATION ${CMAKE_INSTALL_LIBDIR}/minipuzzle COMPONENT runtime)
  endforeach()
  set_property(TARGET minipuzzle APPEND PROPERTY INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}/minipuzzle")
endif()

# --- dev: libraries and headers ------------------------------------------------------------------
get_property(_mp_targets GLOBAL PROPERTY MP_PACKAGE_TARGETS)
get_property(_mp_header_dirs GLOBAL PROPERTY MP_PACKAGE_HEADER_DIRS)
install(TARGETS ${_mp_targets} mp_thirdparty mp_stdcxx_first EXPORT minipuzzleTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)

# Each library's folder gives its headers, subfolders included, except a subfolder that is a
# library of its own (data/tokenizer/), which installs its headers itself.
foreach(_mp_dir ${_mp_header_dirs})
  file(RELATIVE_PATH _mp_rel ${CMAKE_SOURCE_DIR} ${_mp_dir})
  file(GLOB_RECURSE _mp_headers RELATIVE ${_mp_dir} ${_mp_dir}/*.h ${_mp_dir}/*.cuh)
  foreach(_mp_h ${_mp_headers})
    get_filename_component(_mp_sub "${_mp_h}" DIRECTORY)
    set(_mp_nested OFF)
    foreach(_mp_other ${_mp_header_dirs})
      if(NOT _mp_other STREQUAL _mp_dir AND _mp_sub)
        cmake_path(IS_PREFIX _mp_other "${_mp_dir}/${_mp_sub}" _mp_in_other)
        cmake_path(IS_PREFIX _mp_dir "${_mp_other}" _mp_below)
        if(_mp_in_other AND _mp_below)
          set(_mp_nested ON)
        endif()
      endif()
    endforeach()
    if(NOT _mp_nested)
      install(FILES ${_mp_dir}/${_mp_h} DESTINATION ${MP_INSTALL_INCLUDEDIR}/${_mp_rel}/${_mp_sub} COMPONENT dev)
    endif()
  endforeach()
endforeach()

# Header-only libraries taken from deps/ (machines without Debian's packages) are installed with
# ours, so the package needs nothing from the source tree.
if(EXISTS ${MP_DEPS_DIR}/include)
  foreach(_mp_lib fmt nlohmann Eigen)
    if(EXISTS ${MP_DEPS_DIR}/include/${_mp_lib})
      install(DIRECTORY ${MP_DEPS_DIR}/include/${_mp_lib} DESTINATION ${MP_INSTALL_INCLUDEDIR}/thirdparty COMPONENT dev)
    endif()
  endforeach()
  target_include_directories(mp_thirdparty SYSTEM INTERFACE $<INSTALL_INTERFACE:${MP_INSTALL_INCLUDEDIR}/thirdparty>)
endif()

# --- dev: the CMake package ----------------------------------------------------------------------
set(MP_PACKAGE_TORCH_DIR "${Torch_DIR}")
set(MP_PACKAGE_FMT OFF)
set(MP_PACKAGE_NLOHMANN_JSON OFF)
if(fmt_FOUND)
  set(MP_PACKAGE_FMT ON)
endif()
if(nlohmann_json_FOUND)
  set(MP_PACKAGE_NLOHMANN_JSON ON)
endif()
set(MP_PACKAGE_PKGCONFIG_TOKENIZER OFF)
if(_mp_tokenizer_libs STREQUAL "pkg-config")
  set(MP_PACKAGE_PKGCONFIG_TOKENIZER ON)
endif()
set(MP_PACKAGE_BUNDLED_PCRE2 "")
set(MP_PACKAGE_BUNDLED_UTF8PROC "")
if(_mp_tokenizer_libs STREQUAL "bundled")
  get_filename_component(MP_PACKAGE_BUNDLED_PCRE2 "${MP_PCRE2_LIB}" NAME)
  get_filename_component(MP_PACKAGE_BUNDLED_UTF8PROC "${MP_UTF8PROC_LIB}" NAME)
endif()
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/minipuzzleConfig.cmake.in
  ${CMAKE_BINARY_DIR}/package/minipuzzleConfig.cmake
  INSTALL_DESTINATION ${MP_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_LIBDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/package/minipuzzleConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(EXPORT minipuzzleTargets NAMESPACE minipuzzle:: DESTINATION ${MP_INSTALL_CMAKEDIR} COMPONENT dev)
install(FILES ${CMAKE_BINARY_DIR}/package/minipuzzleConfig.cmake ${CMAKE_BINARY_DIR}/package/minipuzzleConfigVersion.cmake
        DESTINATION ${MP_INSTALL_CMAKEDIR} COMPONENT dev)

include(cmake/package.cmake)  # `cpack -G DEB`
