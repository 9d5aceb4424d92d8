#pragma once
// The timeline both backends emit: per worker, per operation, when it started
// and ended and how many bytes it sent. The simulator writes predicted times,
// the runtime measured ones, so the two compare op by op.
//
// On disk it is Chrome trace-event JSON (opens in Perfetto / chrome://tracing)
// with our own keys beside "traceEvents":
//   {"format": "resist-timeline", "version": 1, "source": "sim"|"runtime",
//    "workers": S, "displayTimeUnit": "ms",
//    "traceEvents": [{"name": kind, "cat": "compute"|"comm", "ph": "X",
//                     "ts": start_us, "dur": dur_us, "pid": 0, "tid": worker,
//                     "args": {"round": r, "op": i, "bytes": n, "iters": k}}, ...]}
// plus one "M" (metadata) event per worker naming its track "worker N".
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace resist {

struct TimelineEvent {
  int worker = 0;
  int round = 0;
  // "compute" (the round's local iterations), "optimizer", "eval", or a comm
  // op kind: "allreduce", "reduce", "broadcast", "send", "recv".
  std::string kind;
  int op = -1;             // index into the round's sync list; -1 for compute
  double start_s = 0, end_s = 0;
  std::uint64_t bytes = 0; // bytes this worker sent in this event
  int iters = 0;           // compute: local iterations covered
  bool is_comm() const { return op >= 0; }
};

struct Timeline {
  std::string source;  // "sim" or "runtime"
  int workers = 0;
  std::vector<TimelineEvent> events;
};

nlohmann::json to_json(const Timeline& t);
Timeline timeline_from_json(const nlohmann::json& j);  // throws UserError naming the path
void write_timeline_file(const Timeline& t, const std::string& path);  // atomic
Timeline read_timeline_file(const std::string& path);

}  // namespace resist
