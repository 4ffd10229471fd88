# Precompiled <torch/torch.h>, for build time (CI builds cold on 2 cores).
#
# On a 2-core AMD EPYC a file holding only #include <torch/torch.h> compiles in 20 s, and
# in 5.5 s with the header precompiled; a real unit gains less (core/grpo/trainer.cc 29.0
# -> 22.2 s: the rest is code generation). The cold build: 1001 -> 931 s at -j2.
#
# GCC uses a precompiled header only where the flags that shape it match: -fPIC against
# -fPIE, and macros the header tests (_OPENMP from -fopenmp, _REENTRANT from -pthread);
# elsewhere it warns (-Winvalid-pch) and parses the header as usual, so a mismatch costs
# time, never correctness. Hence one header per kind, each built once by a small object
# library and reused by every target of that kind:
#   grpo_pch_lib  static libraries (-fPIC)
#   grpo_pch_exe  executables (-fPIE)
#   grpo_model    its own (it is compiled with -fopenmp)
# and -pthread everywhere (the top-level CMakeLists.txt), so _REENTRANT agrees.
#
# Sources that do not reach torch (scanned through the project's quoted includes) are
# left without the header: loading it would cost them 5 s for nothing.
#
# GRPO_TORCH_PCH=OFF turns all of this off.

# ON in `out` when `file` includes <torch/...>, <ATen/...> or <c10/...>, directly or
# through the project's own headers ("core/...", or a name next to the file).
function(grpo_reaches_torch file out)
  get_property(done GLOBAL PROPERTY "grpo_torch:${file}" SET)
  if(done)
    get_property(v GLOBAL PROPERTY "grpo_torch:${file}")
    set(${out} ${v} PARENT_SCOPE)
    return()
  endif()
  set_property(GLOBAL PROPERTY "grpo_torch:${file}" OFF)  # breaks include cycles
  set(v OFF)
  file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include")
  get_filename_component(dir "${file}" DIRECTORY)
  foreach(line IN LISTS lines)
    if(line MATCHES "<(torch|ATen|c10)/")
      set(v ON)
      break()
    endif()
    if(line MATCHES "\"([^\"]+)\"")
      set(name "${CMAKE_MATCH_1}")
      foreach(candidate "${CMAKE_SOURCE_DIR}/${name}" "${dir}/${name}")
        if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
          grpo_reaches_torch("${candidate}" sub)
          if(sub)
            set(v ON)
          endif()
          break()
        endif()
      endforeach()
      if(v)
        break()
      endif()
    endif()
  endforeach()
  set_property(GLOBAL PROPERTY "grpo_torch:${file}" ${v})
  set(${out} ${v} PARENT_SCOPE)
endfunction()

# Gives every target in the arguments the precompiled torch header of its kind, on the
# sources that reach torch. Call after the targets exist.
function(grpo_torch_pch)
  if(NOT GRPO_TORCH_PCH)
    return()
  endif()
  if(NOT TARGET grpo_pch_lib)
    set(stub "${CMAKE_BINARY_DIR}/grpo_pch_stub.cc")
    file(WRITE "${stub}" "// Builds the precompiled <torch/torch.h> (cmake/TorchPch.cmake).\n")
    add_library(grpo_pch_lib OBJECT "${stub}")
    add_library(grpo_pch_exe OBJECT "${stub}")
    set_target_properties(grpo_pch_exe PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(grpo_pch_exe PRIVATE -fPIE)
    foreach(owner grpo_pch_lib grpo_pch_exe)
      target_link_libraries(${owner} PRIVATE ${TORCH_LIBRARIES})
      target_precompile_headers(${owner} PRIVATE <torch/torch.h>)
    endforeach()
  endif()
  foreach(target IN LISTS ARGN)
    get_target_property(sources ${target} SOURCES)
    get_target_property(source_dir ${target} SOURCE_DIR)
    set(any OFF)
    foreach(src IN LISTS sources)
      if(NOT src MATCHES "\\.(cc|cpp|cxx)$")
        continue()
      endif()
      if(IS_ABSOLUTE "${src}")
        set(path "${src}")
      else()
        set(path "${source_dir}/${src}")
      endif()
      set(reaches OFF)
      if(EXISTS "${path}")
        grpo_reaches_torch("${path}" reaches)
      endif()
      if(reaches)
        set(any ON)
      else()
        set_source_files_properties("${path}" TARGET_DIRECTORY ${target} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
      endif()
    endforeach()
    if(NOT any)
      continue()
    endif()
    get_target_property(type ${target} TYPE)
    if(target STREQUAL "grpo_model")
      target_precompile_headers(${target} PRIVATE <torch/torch.h>)
    elseif(type STREQUAL "EXECUTABLE")
      target_precompile_headers(${target} REUSE_FROM grpo_pch_exe)
    else()
      target_precompile_headers(${target} REUSE_FROM grpo_pch_lib)
    endif()
  endforeach()
endfunction()

# grpo_torch_pch over every executable and library of the project. Call at the end of
# the top-level CMakeLists.txt, once every subdirectory has made its targets.
function(grpo_collect_targets dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    grpo_collect_targets(${sub} more)
    list(APPEND targets ${more})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

function(grpo_torch_pch_all)
  grpo_collect_targets(${CMAKE_SOURCE_DIR} all)
  set(compiled)
  foreach(t IN LISTS all)
    get_target_property(type ${t} TYPE)
    if(type MATCHES "^(EXECUTABLE|STATIC_LIBRARY|SHARED_LIBRARY)$")
      list(APPEND compiled ${t})
    endif()
  endforeach()
  grpo_torch_pch(${compiled})
endfunction()
