# CMake toolchain for cross-compiling edgekit to 64-bit Arm Linux (Raspberry Pi 4/5, arm64 boards) with Debian's
# g++-aarch64-linux-gnu. The result runs on the device, or here under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR lets
# ctest do that). Used by edgekit.build.build_target and tests/cross/test_kernels_arm.py:
#   cmake -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DEDGEKIT_BUILD_PYTHON=OFF
# No -march/-mcpu here: a device profile (targets/*.yaml) adds its own flags, and dispatch picks kernels at run time.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EK_AARCH64_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${EK_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${EK_AARCH64_TRIPLE}-g++)

# Debian's multiarch cross sysroot; libraries and headers come from there, build tools from the host.
set(EK_AARCH64_SYSROOT /usr/${EK_AARCH64_TRIPLE})
set(CMAKE_FIND_ROOT_PATH ${EK_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(EK_QEMU_AARCH64 qemu-aarch64)
if(EK_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${EK_QEMU_AARCH64} -L ${EK_AARCH64_SYSROOT})
endif()
