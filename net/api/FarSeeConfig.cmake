# find_package(FarSee): the imported target FarSee::farsee (libfarsee.so and farsee/farsee.h).
# Everything FarSee uses inside is linked into libfarsee.so, so nothing else is looked for.
include("${CMAKE_CURRENT_LIST_DIR}/FarSeeTargets.cmake")
