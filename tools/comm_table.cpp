#include "tools/comm_table.hpp"

#include <algorithm>

#include "schedule/accounting.hpp"

namespace resist::tools {

CommRow comm_row(const ModelSpec& spec, ScheduleConfig c, int sample) {
  c.rounds = sample + 1;
  ScheduleGenerator gen(spec, c);
  CommRow row{c.protocol, c.workers, gen.header().config.local_iters, sample};
  row.params_total = spec.param_count();
  for (int r = 0; r < sample; ++r) {
    const auto a = account(spec, gen.header(), gen.round(r));
    row.bytes_per_round = std::max(row.bytes_per_round, a.bytes_per_round);
    for (auto p : a.params_per_worker) row.params_per_worker = std::max(row.params_per_worker, p);
    row.wire_bytes_per_round += double(a.wire_bytes) / sample;
    row.wire_bytes_per_round_max = std::max(row.wire_bytes_per_round_max, a.wire_bytes);
    std::uint64_t busiest = 0;
    for (auto s : a.wire_sent_per_worker) busiest = std::max(busiest, s);
    row.wire_bytes_per_worker_max += double(busiest) / sample;
  }
  return row;
}

}  // namespace resist::tools
