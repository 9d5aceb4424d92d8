#include "schedule/timeline.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "schedule/json_util.hpp"

namespace resist {

using json_util::json;
using json_util::Reader;

namespace {

int stride(int rounds, const TraceRounds& tr) {
  const int middle = rounds - 2 * tr.ends;
  return std::max(1, (middle + tr.sample - 1) / std::max(1, tr.sample));
}

int node_of(const Timeline& t, int w) { return t.node_of.empty() ? 0 : t.node_of[std::size_t(w)]; }

// The metadata events: one named process per node, one named thread per worker.
json metadata(const Timeline& t) {
  json m = json::array();
  int nodes = 1;
  for (int w = 0; w < t.workers; ++w) nodes = std::max(nodes, node_of(t, w) + 1);
  for (int n = 0; n < nodes; ++n) {
    const std::string name =
        std::size_t(n) < t.node_names.size() ? t.node_names[std::size_t(n)] : "node " + std::to_string(n);
    m.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", n}, {"args", {{"name", name}}}});
    m.push_back({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", n}, {"args", {{"sort_index", n}}}});
  }
  for (int w = 0; w < t.workers; ++w) {
    const std::string label =
        std::size_t(w) < t.worker_labels.size() ? t.worker_labels[std::size_t(w)] : "rank " + std::to_string(w);
    m.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", node_of(t, w)}, {"tid", w}, {"args", {{"name", label}}}});
    m.push_back({{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", node_of(t, w)}, {"tid", w},
                 {"args", {{"sort_index", w}}}});
  }
  return m;
}

json event_json(const Timeline& t, const TimelineEvent& e) {
  return {{"name", e.kind},
          {"cat", e.is_comm() ? "comm" : "compute"},
          {"ph", "X"},
          {"ts", e.start_s * 1e6},
          {"dur", (e.end_s - e.start_s) * 1e6},
          {"pid", node_of(t, e.worker)},
          {"tid", e.worker},
          {"args",
           {{"round", e.round}, {"op", e.op}, {"bytes", e.bytes}, {"bytes_received", e.bytes_received},
            {"iters", e.iters}}}};
}

json header(const Timeline& t) {
  return {{"format", "resist-timeline"}, {"version", 1},         {"source", t.source},
          {"workers", t.workers},        {"rounds", t.rounds},  {"traced_rounds", t.traced_rounds},
          {"displayTimeUnit", "ms"}};
}

}  // namespace

bool TraceRounds::keep(int round, int rounds) const {
  if (all || rounds <= 2 * ends + sample) return true;
  if (round < ends || round >= rounds - ends) return true;
  return (round - ends) % stride(rounds, *this) == 0;
}

int TraceRounds::kept(int rounds) const {
  if (all || rounds <= 2 * ends + sample) return rounds;
  return 2 * ends + (rounds - 2 * ends + stride(rounds, *this) - 1) / stride(rounds, *this);
}

void group_by_node(Timeline& t, int gpus_per_node, const std::string& platform) {
  const int gpn = std::max(1, gpus_per_node);
  t.node_of.assign(std::size_t(t.workers), 0);
  t.worker_labels.assign(std::size_t(t.workers), "");
  t.node_names.clear();
  for (int w = 0; w < t.workers; ++w) {
    t.node_of[std::size_t(w)] = w / gpn;
    t.worker_labels[std::size_t(w)] = "rank " + std::to_string(w) + " (GPU " + std::to_string(w % gpn) + ")";
  }
  for (int n = 0; n * gpn < t.workers; ++n)
    t.node_names.push_back("node " + std::to_string(n) + (platform.empty() ? "" : " (" + platform + ")"));
}

nlohmann::json to_json(const Timeline& t) {
  json events = metadata(t);
  for (const auto& e : t.events) events.push_back(event_json(t, e));
  json j = header(t);
  j["traceEvents"] = std::move(events);
  return j;
}

Timeline timeline_from_json(const nlohmann::json& j) {
  const Reader root{j, ""};
  json_util::expect_format(root, "resist-timeline", 1);
  Timeline t;
  t.source = root.at("source").str();
  t.workers = int(root.at("workers").integer(0, 1 << 20));
  if (root.has("rounds")) t.rounds = int(root.at("rounds").integer(0, json_util::kMaxInt));
  if (root.has("traced_rounds")) t.traced_rounds = int(root.at("traced_rounds").integer(0, json_util::kMaxInt));
  const Reader events = root.at("traceEvents");
  for (std::size_t i = 0; i < events.size(); ++i) {
    const Reader e = events.at(i);
    if (e.at("ph").str() != "X") continue;
    TimelineEvent ev;
    ev.kind = e.at("name").str();
    ev.worker = int(e.at("tid").integer(0, t.workers - 1));
    ev.start_s = e.at("ts").number() / 1e6;
    ev.end_s = ev.start_s + e.at("dur").number(0, 1e18) / 1e6;
    const Reader args = e.at("args");
    ev.round = int(args.at("round").integer(0, json_util::kMaxInt));
    ev.op = int(args.at("op").integer(-1, json_util::kMaxInt));
    ev.bytes = args.at("bytes").uint();
    if (args.has("bytes_received")) ev.bytes_received = args.at("bytes_received").uint();
    ev.iters = int(args.at("iters").integer(0, json_util::kMaxInt));
    t.events.push_back(std::move(ev));
  }
  return t;
}

void write_timeline_file(const Timeline& t, const std::string& path) {
  // Event by event into path.tmp, then renamed: no JSON document (or string)
  // of the whole trace is ever held in memory, and no half-written file is left.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw UserError("--out: cannot write '" + path + "'");
    std::string head = header(t).dump();
    head.pop_back();  // the closing brace
    out << head << ",\"traceEvents\":[";
    bool first = true;
    for (const auto& m : metadata(t)) {
      out << (first ? "" : ",\n") << m.dump();
      first = false;
    }
    for (const auto& e : t.events) {
      out << (first ? "" : ",\n") << event_json(t, e).dump();
      first = false;
    }
    out << "]}\n";
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw UserError("--out: cannot write '" + path + "'");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw UserError("--out: cannot write '" + path + "' (" + ec.message() + ")");
  }
}

Timeline read_timeline_file(const std::string& path) {
  const json j = json_util::read_file(path, "--timeline");
  try {
    return timeline_from_json(j);
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what());
  }
}

}  // namespace resist
