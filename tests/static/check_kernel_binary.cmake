# Static check of one kernel source file's GPU code, run by ctest with `cmake -P` (needs nvcc, no
# GPU). Compiles SOURCE to a cubin for sm_ARCH with `-Xptxas -v` (the library's optimisation
# flags), prints the per-kernel register / spill / shared-memory report, then, by MODE:
#   ptxas  every kernel whose mangled name matches KERNELS has 0 bytes of spill stores and loads
#   sass   `cuobjdump -sass` of the cubin shows an HMMA (tensor-core) instruction in every kernel
#          matching KERNELS (prints "SKIPPED: ..." and passes when CUOBJDUMP is empty: the test
#          is marked skipped by its SKIP_REGULAR_EXPRESSION)
# Arguments (-D): NVCC, CUOBJDUMP, CXXFILT (optional demangler), SOURCE, SOURCE_DIR (include
# root), ARCH, MODE, KERNELS (regex), WORK_DIR.
cmake_minimum_required(VERSION 3.24)

foreach(arg NVCC SOURCE SOURCE_DIR ARCH MODE KERNELS WORK_DIR)
  if(NOT DEFINED ${arg})
    message(FATAL_ERROR "check_kernel_binary.cmake: -D${arg}=... missing")
  endif()
endforeach()

if(MODE STREQUAL "sass" AND NOT CUOBJDUMP)
  message(STATUS "SKIPPED: cuobjdump (and nvdisasm) not found at configure time; install the "
                 "CUDA toolkit's cuobjdump to run the SASS check")
  return()
endif()

file(MAKE_DIRECTORY ${WORK_DIR})
get_filename_component(stem ${SOURCE} NAME_WE)
set(cubin ${WORK_DIR}/${stem}.sm_${ARCH}.cubin)
execute_process(
  COMMAND ${NVCC} -cubin -arch=sm_${ARCH} -O3 -DNDEBUG -std=c++17 --expt-relaxed-constexpr
          -DFARSEE_HAVE_CUDA=1 -I${SOURCE_DIR} -Xptxas -v -o ${cubin} ${SOURCE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE ptxas_log)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nvcc failed (${rc}) on ${SOURCE} for sm_${ARCH}:\n${out}\n${ptxas_log}")
endif()
file(WRITE ${WORK_DIR}/${stem}.sm_${ARCH}.ptxas.log "${ptxas_log}")

# Readable kernel name: demangled, namespaces and the anonymous-namespace tag dropped.
function(readable_name mangled result)
  set(name ${mangled})
  if(CXXFILT)
    execute_process(COMMAND ${CXXFILT} ${mangled} OUTPUT_VARIABLE name
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
  string(REGEX REPLACE "\\(anonymous namespace\\)::" "" name "${name}")
  string(REGEX REPLACE "farsee::(cuda_impl::)?" "" name "${name}")
  string(REGEX REPLACE "\\(.*\\)$" "" name "${name}")  # parameter list
  set(${result} "${name}" PARENT_SCOPE)
endfunction()

# ---- per-kernel ptxas report ----
string(REPLACE ";" "," ptxas_log "${ptxas_log}")
string(REPLACE "\n" ";" lines "${ptxas_log}")
set(kernel "")
set(checked 0)
set(failures "")
set(report "")
foreach(line IN LISTS lines)
  if(line MATCHES "Compiling entry function '([^']+)'")
    set(kernel ${CMAKE_MATCH_1})
    set(selected OFF)
    if(kernel MATCHES "${KERNELS}")
      set(selected ON)
    endif()
  elseif(line MATCHES "([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores, ([0-9]+) bytes spill loads")
    set(stack ${CMAKE_MATCH_1})
    set(spill_stores ${CMAKE_MATCH_2})
    set(spill_loads ${CMAKE_MATCH_3})
  elseif(line MATCHES "Used ([0-9]+) registers" AND NOT kernel STREQUAL "")
    set(registers ${CMAKE_MATCH_1})
    set(smem 0)
    if(line MATCHES "([0-9]+) bytes smem")
      set(smem ${CMAKE_MATCH_1})
    endif()
    readable_name(${kernel} name)
    string(APPEND report "  ${registers} registers, ${stack} B stack, spill ${spill_stores}/"
                         "${spill_loads} B (stores/loads), ${smem} B static smem: ${name}\n")
    if(selected)
      math(EXPR checked "${checked} + 1")
      if(MODE STREQUAL "ptxas" AND (NOT spill_stores EQUAL 0 OR NOT spill_loads EQUAL 0))
        string(APPEND failures "  ${name}: ${spill_stores} B spill stores, ${spill_loads} B spill "
                               "loads\n")
      endif()
    endif()
    set(kernel "")
  endif()
endforeach()
message(STATUS "ptxas report for ${stem} on sm_${ARCH} (dynamic shared memory is not listed):\n"
               "${report}")
if(checked EQUAL 0)
  message(FATAL_ERROR "no kernel of ${SOURCE} matches '${KERNELS}'")
endif()

if(MODE STREQUAL "ptxas")
  if(failures)
    message(FATAL_ERROR "register spills on sm_${ARCH}:\n${failures}")
  endif()
  message(STATUS "sm_${ARCH}: ${checked} kernels matching '${KERNELS}', none spills")
  return()
endif()

# ---- SASS: an HMMA in every selected kernel ----
# cuobjdump runs nvdisasm, looked up on PATH: the one installed beside it.
get_filename_component(cuobjdump_dir ${CUOBJDUMP} DIRECTORY)
set(ENV{PATH} "${cuobjdump_dir}:$ENV{PATH}")
execute_process(COMMAND ${CUOBJDUMP} -sass ${cubin} RESULT_VARIABLE rc OUTPUT_VARIABLE sass
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cuobjdump -sass failed (${rc}): ${err}")
endif()
# Only the function headers and the HMMA mnemonics, as list items (SASS operands hold brackets,
# which CMake's list splitting treats specially).
string(REGEX MATCHALL "Function : [^ \t\r\n]+|HMMA\\." tokens "${sass}")
set(kernel "")
set(without_hmma "")
set(with_hmma 0)
set(hmma_count 0)
macro(close_kernel)
  if(NOT kernel STREQUAL "" AND kernel MATCHES "${KERNELS}")
    readable_name(${kernel} name)
    if(hmma_count EQUAL 0)
      string(APPEND without_hmma "  ${name}\n")
    else()
      math(EXPR with_hmma "${with_hmma} + 1")
      message(STATUS "  ${hmma_count} HMMA: ${name}")
    endif()
  endif()
endmacro()
foreach(line IN LISTS tokens)
  if(line MATCHES "Function : (.+)")
    set(next_kernel ${CMAKE_MATCH_1})  # before close_kernel() runs its own MATCHES
    close_kernel()
    set(kernel ${next_kernel})
    set(hmma_count 0)
  else()  # an HMMA
    math(EXPR hmma_count "${hmma_count} + 1")
  endif()
endforeach()
close_kernel()
if(without_hmma)
  message(FATAL_ERROR "sm_${ARCH}: no HMMA instruction in:\n${without_hmma}")
endif()
if(with_hmma EQUAL 0)
  message(FATAL_ERROR "sm_${ARCH}: cuobjdump listed no kernel matching '${KERNELS}'")
endif()
message(STATUS "sm_${ARCH}: ${with_hmma} kernels matching '${KERNELS}' use tensor cores (HMMA)")
