#pragma once
// The timeline both backends emit: per worker, per operation, when it started
// and ended and how many bytes it sent and received. The simulator writes
// predicted times, the runtime measured ones, with the same event names, so
// the two compare op by op.
//
// On disk it is Chrome trace-event JSON (opens in Perfetto / chrome://tracing)
// with our own keys beside "traceEvents":
//   {"format": "resist-timeline", "version": 1, "source": "sim"|"runtime",
//    "workers": S, "rounds": R, "traced_rounds": T, "displayTimeUnit": "ms",
//    "traceEvents": [{"name": kind, "cat": "compute"|"comm", "ph": "X",
//                     "ts": start_us, "dur": dur_us, "pid": node, "tid": worker,
//                     "args": {"round": r, "op": i, "bytes": sent,
//                              "bytes_received": received, "iters": k}}, ...]}
// One Perfetto process per node (pid = node index, named by a process_name
// metadata event, e.g. "node 1 (p3-8xlarge)" or the host name) holding one
// thread per worker on it (tid = worker rank, thread_name "rank 5 (GPU 1)").
//
// Event names, identical in both backends: "compute" (a round's local
// iterations), "optimizer", "eval", and per comm op its kind ("allreduce",
// "reduce", "broadcast", "send"), except the receiving side of a
// point-to-point transfer, which is "recv" (bytes 0, bytes_received M).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace resist {

struct TimelineEvent {
  int worker = 0;
  int round = 0;
  std::string kind;        // see above
  int op = -1;             // index into the round's sync list; -1 for compute
  double start_s = 0, end_s = 0;
  std::uint64_t bytes = 0; // bytes this worker sent in this event
  int iters = 0;           // compute: local iterations covered
  std::uint64_t bytes_received = 0;  // bytes this worker received in this event
  bool is_comm() const { return op >= 0; }
};

struct Timeline {
  std::string source;  // "sim" or "runtime"
  int workers = 0;
  int rounds = 0;          // rounds of the run (0: unknown)
  int traced_rounds = 0;   // rounds whose events are kept (see TraceRounds)
  // Grouping for Perfetto: node of each worker (empty: all on node 0) and
  // node names (empty: "node N"); worker labels (empty: "rank N").
  std::vector<int> node_of;
  std::vector<std::string> node_names, worker_labels;
  std::vector<TimelineEvent> events;
};

// Which rounds a trace keeps, so a long run's trace stays small: every round
// of a short run; of a long one the first and last `ends` rounds plus about
// `sample` evenly spaced rounds between them. `all` keeps every round.
struct TraceRounds {
  bool all = false;
  int ends = 8, sample = 48;
  bool keep(int round, int rounds) const;
  int kept(int rounds) const;  // how many rounds keep() selects
};

// Sets node_of / node_names / worker_labels for ranks laid out like the
// simulator's platforms: rank r on GPU r % gpus_per_node of node r / gpus_per_node.
void group_by_node(Timeline& t, int gpus_per_node, const std::string& platform);

nlohmann::json to_json(const Timeline& t);
Timeline timeline_from_json(const nlohmann::json& j);  // throws UserError naming the path
// Atomic; writes event by event, so memory stays proportional to one event.
void write_timeline_file(const Timeline& t, const std::string& path);
Timeline read_timeline_file(const std::string& path);

}  // namespace resist
