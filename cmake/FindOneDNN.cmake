# Finds Intel oneDNN (Debian: libdnnl-dev) for its C API and defines the imported
# target OneDNN::dnnl.
#
# Why not find_package(dnnl CONFIG): Debian's oneDNN is built with the OpenCL GPU
# runtime, and the CMake config it ships runs find_package(OpenCL REQUIRED), which
# fails unless the OpenCL headers (ocl-icd-opencl-dev, only a Recommends) are
# installed. kdtrain runs on the CPU and includes only <oneapi/dnnl/dnnl.h>, which
# needs no OpenCL header; the library's own runtime dependency on the OpenCL ICD
# loader (libOpenCL.so.1) is a hard Depends of libdnnl2 and arrives with it.
#
# Results: OneDNN_FOUND, OneDNN_VERSION, OneDNN_INCLUDE_DIR, OneDNN_LIBRARY.
find_path(OneDNN_INCLUDE_DIR NAMES oneapi/dnnl/dnnl.h)
find_library(OneDNN_LIBRARY NAMES dnnl)

if(OneDNN_INCLUDE_DIR AND EXISTS "${OneDNN_INCLUDE_DIR}/oneapi/dnnl/dnnl_version.h")
  file(STRINGS "${OneDNN_INCLUDE_DIR}/oneapi/dnnl/dnnl_version.h" _kd_dnnl_version_lines
       REGEX "^#define DNNL_VERSION_(MAJOR|MINOR|PATCH) +[0-9]+")
  foreach(_kd_part MAJOR MINOR PATCH)
    string(REGEX REPLACE ".*#define DNNL_VERSION_${_kd_part} +([0-9]+).*" "\\1"
           _kd_dnnl_${_kd_part} "${_kd_dnnl_version_lines}")
  endforeach()
  set(OneDNN_VERSION "${_kd_dnnl_MAJOR}.${_kd_dnnl_MINOR}.${_kd_dnnl_PATCH}")
  unset(_kd_dnnl_version_lines)
endif()

# gemm.c uses the oneDNN 2 C API (operation descriptors), which oneDNN 3 removed.
if(OneDNN_VERSION AND OneDNN_VERSION VERSION_GREATER_EQUAL 3)
  message(FATAL_ERROR "oneDNN ${OneDNN_VERSION} found in ${OneDNN_INCLUDE_DIR}, but kdtrain uses "
                      "the oneDNN 2 C API: install Debian 12's libdnnl-dev (2.x)")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OneDNN
  REQUIRED_VARS OneDNN_LIBRARY OneDNN_INCLUDE_DIR
  VERSION_VAR OneDNN_VERSION
  REASON_FAILURE_MESSAGE "install Debian's libdnnl-dev (scripts/bootstrap.sh does)")

if(OneDNN_FOUND AND NOT TARGET OneDNN::dnnl)
  add_library(OneDNN::dnnl UNKNOWN IMPORTED)
  set_target_properties(OneDNN::dnnl PROPERTIES
    IMPORTED_LOCATION "${OneDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${OneDNN_INCLUDE_DIR}")
endif()
mark_as_advanced(OneDNN_INCLUDE_DIR OneDNN_LIBRARY)
