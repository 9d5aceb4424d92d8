#pragma once
// The per-round communication of one configuration, averaged over sampled
// rounds (no simulation): the rows of `resist-sim comm` and of the study
// `table1`.
#include <cstdint>

#include "schedule/schedule.hpp"

namespace resist::tools {

struct CommRow {
  Protocol protocol = Protocol::resist;
  int machines = 0, local_iters = 0, rounds_sampled = 0;
  std::uint64_t bytes_per_round = 0, params_per_worker = 0, params_total = 0;
  double wire_bytes_per_round = 0;        // mean over the sampled rounds
  std::uint64_t wire_bytes_per_round_max = 0;
  double wire_bytes_per_worker_max = 0;   // mean over rounds of the busiest worker's sends
};

// Averages over `sample` rounds; the run has one more round so that the final
// gather of the model at rank 0 is not among them.
CommRow comm_row(const ModelSpec& spec, ScheduleConfig config, int sample);

}  // namespace resist::tools
