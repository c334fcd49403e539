# moe_set_warnings(target): the project's warning set, -Werror with MOE_WERROR.
add_library(moe_warnings INTERFACE)
target_compile_options(moe_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-unused-parameter>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${MOE_WERROR}>>:-Werror>)
# Debian's Open MPI headers pull in the deprecated C++ bindings otherwise.
target_compile_definitions(moe_warnings INTERFACE OMPI_SKIP_MPICXX=1)
if(MOE_SANITIZE)
  target_compile_options(moe_warnings INTERFACE -fsanitize=${MOE_SANITIZE} -fno-omit-frame-pointer)
  target_link_options(moe_warnings INTERFACE -fsanitize=${MOE_SANITIZE})
endif()
