# Finds the project's dependencies and repairs the known quirks of Debian's
# Trilinos packages without touching a cluster's own installs.

find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(Kokkos REQUIRED)
# Does the Kokkos we found have the CUDA backend? Then the CUDA parts are on,
# the GEMMs go to cuBLAS (kernels/GemmCublas.cpp) and Kokkos Kernels is not
# needed.
if(Kokkos_ENABLE_CUDA OR "CUDA" IN_LIST Kokkos_DEVICES)
  set(MOE_KOKKOS_HAS_CUDA ON)
  set(MOE_ENABLE_CUDA ON CACHE BOOL "" FORCE)
else()
  set(MOE_KOKKOS_HAS_CUDA OFF)
endif()
if(MOE_KOKKOS_HAS_CUDA)
  # Not searched at all: a system Kokkos Kernels (Debian's 3.4, from Trilinos)
  # is built for another Kokkos, and its config would drag that one in.
  set(MOE_KOKKOSKERNELS_TARGET "")
  message(STATUS "Kokkos ${Kokkos_VERSION} has CUDA: GEMMs on cuBLAS, Kokkos Kernels not used")
  # Measured on an H200 (docs/gpu.md, "Kernel self-check"): Kokkos 4.6's new
  # mdspan-based View, compiled by nvcc 13, runs RangePolicy kernels wrongly
  # (they write nothing, or out of bounds) while compiling without a warning.
  # Its legacy View does not. Refuse the combination before an hour of nvcc.
  if(Kokkos_VERSION VERSION_GREATER_EQUAL 4.6 AND Kokkos_VERSION VERSION_LESS 4.7
     AND Kokkos_CXX_COMPILER_ID STREQUAL "NVIDIA" AND Kokkos_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 13
     AND "IMPL_MDSPAN" IN_LIST Kokkos_OPTIONS AND NOT "IMPL_VIEW_LEGACY" IN_LIST Kokkos_OPTIONS)
    message(FATAL_ERROR
      "Kokkos ${Kokkos_VERSION} (${Kokkos_DIR}) uses its mdspan-based View with nvcc "
      "${Kokkos_CXX_COMPILER_VERSION}: on a GPU its range kernels compute wrong results. Rebuild Kokkos with "
      "-DKokkos_ENABLE_IMPL_VIEW_LEGACY=ON (docs/gpu.md, \"The Kokkos-CUDA build\").")
  endif()
  # bench/ times the host kernels against the host BLAS (sgemm_, which came
  # with Kokkos Kernels' BLAS TPL): not meaningful, nor linkable, here.
  if(MOE_BUILD_BENCH)
    message(STATUS "Kokkos-CUDA build: benchmarks (bench/, host kernels vs host BLAS) not built")
    set(MOE_BUILD_BENCH OFF)
  endif()
else()
  find_package(KokkosKernels REQUIRED)
endif()
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(CLI11 QUIET CONFIG)
find_package(nlohmann_json 3 REQUIRED)
find_package(Threads REQUIRED)

# Debian's Kokkos config points Kokkos::kokkos at <prefix>/include, which does
# not exist; the headers live in /usr/include/trilinos. Repair only when the
# configured directory is missing so that a cluster's Kokkos is left alone.
get_target_property(_moe_kokkos_inc Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
set(_moe_kokkos_inc_ok TRUE)
foreach(_dir IN LISTS _moe_kokkos_inc)
  if(NOT _dir MATCHES "^\\$<" AND NOT EXISTS "${_dir}")
    set(_moe_kokkos_inc_ok FALSE)
  endif()
endforeach()
if(NOT _moe_kokkos_inc_ok)
  find_path(MOE_KOKKOS_INCLUDE_DIR Kokkos_Core.hpp PATH_SUFFIXES trilinos REQUIRED)
  set_target_properties(Kokkos::kokkos PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${MOE_KOKKOS_INCLUDE_DIR}")
  message(STATUS "Repaired Kokkos::kokkos include directory -> ${MOE_KOKKOS_INCLUDE_DIR}")
endif()

# Trilinos exports trilinos_kokkoskernels, a standalone install Kokkos::kokkoskernels.
if(MOE_KOKKOS_HAS_CUDA)
  # (Kokkos Kernels not used.)
elseif(TARGET Kokkos::kokkoskernels)
  set(MOE_KOKKOSKERNELS_TARGET Kokkos::kokkoskernels)
elseif(TARGET trilinos_kokkoskernels)
  set(MOE_KOKKOSKERNELS_TARGET trilinos_kokkoskernels)
else()
  message(FATAL_ERROR "Kokkos Kernels found but neither Kokkos::kokkoskernels nor trilinos_kokkoskernels is defined")
endif()

# Kokkos headers emit C++20 deprecation warnings: keep them -isystem so -Werror
# applies to our code only.
foreach(_tgt Kokkos::kokkos ${MOE_KOKKOSKERNELS_TARGET})
  get_target_property(_inc ${_tgt} INTERFACE_INCLUDE_DIRECTORIES)
  if(_inc)
    set_property(TARGET ${_tgt} APPEND PROPERTY INTERFACE_SYSTEM_INCLUDE_DIRECTORIES ${_inc})
  endif()
endforeach()

# CLI11 2.1 on Debian ships a config; fall back to the header alone.
if(NOT TARGET CLI11::CLI11)
  find_path(MOE_CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  set_target_properties(CLI11::CLI11 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${MOE_CLI11_INCLUDE_DIR}")
endif()

