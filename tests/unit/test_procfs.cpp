// target::process_exists: what ends a recording of a process that seems gone.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include "swprof/target.h"

using namespace swprof;

TEST_CASE("process_exists: a live process, a zombie, a reaped one") {
  CHECK(target::process_exists(getpid()));
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(0);
  // Exited but not reaped: a zombie, nothing left to profile.
  for (int i = 0; i < 500 && target::process_exists(child); ++i) usleep(2000);
  CHECK_FALSE(target::process_exists(child));
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK_FALSE(target::process_exists(child));
}
