# The CUDA parts: the NCCL communicator, the staged-MPI decorator and the
# cuBLAS GEMM path (library moe_cuda in kernels/cuda/). On with -DMOE_ENABLE_CUDA=ON,
# and automatically when the Kokkos found has the CUDA backend
# (MoeDependencies.cmake). Without it nothing here runs: the CPU build never
# needs nvcc.
#
# Sets, for the rest of the build:
#   MOE_HAVE_CUDA     ON when the CUDA parts are built
#   MOE_GEMM_SOURCE   the GEMM backend of moe_kernels: GemmCublas.cpp when the
#                     Kokkos found has CUDA (views live in device memory),
#                     else GemmKokkosBlas.cpp
#   target moe_cuda   CUDA-only library (cuBLAS GEMMs with dtype, expert kernels)
#   target moe::nccl  the NCCL library found

set(MOE_HAVE_CUDA OFF)
set(MOE_GEMM_SOURCE GemmKokkosBlas.cpp)
if(NOT MOE_ENABLE_CUDA)
  return()
endif()

# nvcc: honour CMAKE_CUDA_COMPILER / CUDACXX, else PATH, else the usual
# install folders (a fresh machine often has /usr/local/cuda but no PATH entry).
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(MOE_NVCC nvcc
    HINTS ENV CUDA_HOME ENV CUDA_PATH ENV CUDA_ROOT
    PATHS /usr/local/cuda /opt/cuda
    PATH_SUFFIXES bin)
  if(NOT MOE_NVCC)
    message(FATAL_ERROR "MOE_ENABLE_CUDA=ON but nvcc was not found: put the CUDA toolkit's bin/ on PATH, "
                        "or pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc (or configure without --cuda)")
  endif()
  set(CMAKE_CUDA_COMPILER "${MOE_NVCC}" CACHE FILEPATH "CUDA compiler")
endif()

# nvcc's host compiler: the project's g++ when it is a plain GNU compiler nvcc
# accepts; never nvcc_wrapper (a Kokkos-CUDA build's CXX compiler); else g++-12.
if(NOT CMAKE_CUDA_HOST_COMPILER AND NOT DEFINED ENV{CUDAHOSTCXX})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND NOT CMAKE_CXX_COMPILER MATCHES "nvcc_wrapper"
     AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 15)
    set(_moe_host_cxx "${CMAKE_CXX_COMPILER}")
  else()
    find_program(_moe_host_cxx NAMES g++-12 g++-13 g++)
  endif()
  if(_moe_host_cxx)
    set(CMAKE_CUDA_HOST_COMPILER "${_moe_host_cxx}" CACHE FILEPATH "Host compiler of nvcc")
  endif()
endif()

# H100/H200 (sm_90) and A100 (sm_80); override with -DCMAKE_CUDA_ARCHITECTURES=...
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures")
endif()
# CMake 3.25 does not know CUDA C++20: the .cu files are C++17.
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_EXTENSIONS OFF)
# One CUDA runtime in the process: the shared one, as cuBLAS and Kokkos use.
set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
enable_language(CUDA)

find_package(CUDAToolkit REQUIRED)
if(NOT TARGET CUDA::cublas OR NOT TARGET CUDA::cudart)
  message(FATAL_ERROR "CUDA toolkit at ${CUDAToolkit_LIBRARY_DIR} has no cuBLAS/cudart")
endif()

# NCCL: NCCL_HOME/NCCL_ROOT first, then the toolkit's folders, then the system's.
find_path(MOE_NCCL_INCLUDE_DIR nccl.h
  HINTS ENV NCCL_HOME ENV NCCL_ROOT ${CUDAToolkit_INCLUDE_DIRS}
  PATHS /usr/local/cuda /usr
  PATH_SUFFIXES include)
find_library(MOE_NCCL_LIBRARY NAMES nccl
  HINTS ENV NCCL_HOME ENV NCCL_ROOT ${CUDAToolkit_LIBRARY_DIR}
  PATHS /usr/local/cuda /usr
  PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu)
if(NOT MOE_NCCL_INCLUDE_DIR OR NOT MOE_NCCL_LIBRARY)
  message(FATAL_ERROR "MOE_ENABLE_CUDA=ON but NCCL was not found (nccl.h: ${MOE_NCCL_INCLUDE_DIR}, "
                      "libnccl: ${MOE_NCCL_LIBRARY}); set NCCL_HOME or -DMOE_NCCL_INCLUDE_DIR/-DMOE_NCCL_LIBRARY")
endif()
# LIBRARY_PATH on these machines holds the toolkit's stubs folder; a stub
# linked by mistake makes a binary that cannot start on a real driver.
if(MOE_NCCL_LIBRARY MATCHES "/stubs/")
  message(FATAL_ERROR "NCCL resolved to a stub library (${MOE_NCCL_LIBRARY}); point MOE_NCCL_LIBRARY at the real one")
endif()
file(STRINGS "${MOE_NCCL_INCLUDE_DIR}/nccl.h" _moe_nccl_ver REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
string(REGEX REPLACE ".*NCCL_MAJOR ([0-9]+).*NCCL_MINOR ([0-9]+).*NCCL_PATCH ([0-9]+).*" "\\1.\\2.\\3"
       MOE_NCCL_VERSION "${_moe_nccl_ver}")
if(NOT TARGET moe::nccl)
  add_library(moe::nccl UNKNOWN IMPORTED)
  set_target_properties(moe::nccl PROPERTIES
    IMPORTED_LOCATION "${MOE_NCCL_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${MOE_NCCL_INCLUDE_DIR}"
    INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${MOE_NCCL_INCLUDE_DIR}")
endif()

set(MOE_HAVE_CUDA ON)
if(MOE_KOKKOS_HAS_CUDA)
  set(MOE_GEMM_SOURCE GemmCublas.cpp)
endif()
message(STATUS "moe-ep CUDA parts: nvcc ${CMAKE_CUDA_COMPILER_VERSION} (host ${CMAKE_CUDA_HOST_COMPILER}), "
               "arch ${CMAKE_CUDA_ARCHITECTURES}, NCCL ${MOE_NCCL_VERSION} (${MOE_NCCL_LIBRARY}), "
               "Kokkos CUDA backend: ${MOE_KOKKOS_HAS_CUDA}, GEMM: ${MOE_GEMM_SOURCE}")

add_subdirectory(${PROJECT_SOURCE_DIR}/kernels/cuda ${PROJECT_BINARY_DIR}/kernels/cuda)
