// What the fuzz targets do with a recording the reader accepted: every analysis and export path,
// as the subcommands call them, with the view chosen by a byte of the input. An error a user
// would see (UserError) is fine; anything else is a finding.
#pragma once

#include <cstdint>

#include "swprof/snapshot.h"

namespace swprof::fuzz {

void exercise(const snapshot::Recording& rec, uint8_t choice);
// The same for a recording read with alike samples merged (as analyze, flamegraph and pprof read).
void exercise_merged(const snapshot::Recording& rec, uint8_t choice);

// Silences libprotobuf's logging, as main() does.
void quiet();

}  // namespace swprof::fuzz
