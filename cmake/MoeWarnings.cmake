# moe_set_warnings(target): the project's warning set, -Werror with MOE_WERROR.
add_library(moe_warnings INTERFACE)
target_compile_options(moe_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-unused-parameter>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${MOE_WERROR}>>:-Werror>)
# Unity builds (CMAKE_UNITY_BUILD, what scripts/test uses to fit CI's budget)
# compile several .cpp files as one: GCC then takes a pimpl's member whose type
# sits in an anonymous namespace of a .cpp for one "from a header" and warns.
if(CMAKE_UNITY_BUILD AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(moe_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wno-subobject-linkage>)
endif()
# Debian's Open MPI headers pull in the deprecated C++ bindings otherwise.
target_compile_definitions(moe_warnings INTERFACE OMPI_SKIP_MPICXX=1)
if(MOE_SANITIZE)
  target_compile_options(moe_warnings INTERFACE -fsanitize=${MOE_SANITIZE} -fno-omit-frame-pointer)
  target_link_options(moe_warnings INTERFACE -fsanitize=${MOE_SANITIZE})
endif()
# Kokkos-CUDA builds (CXX = nvcc_wrapper) with GCC 12 as nvcc's host compiler:
# GCC 12's -Wrestrict false positive in std::string's operator+(const char*,
# string&&) (GCC bug 105329), seen in runtime/io/TimelineWriter.cpp's
# create_failure(); only nvcc's host pass at -O3 inlines it that way. Not an
# error there until that code builds its message with += (then drop this).
if(MOE_KOKKOS_HAS_CUDA AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU"
   AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12 AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(moe_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
endif()
