#include "schedule/timeline.hpp"

#include <cmath>

#include "schedule/json_util.hpp"

namespace resist {

using json_util::json;
using json_util::Reader;

nlohmann::json to_json(const Timeline& t) {
  json events = json::array();
  for (int w = 0; w < t.workers; ++w)
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", w},
                      {"args", {{"name", "worker " + std::to_string(w)}}}});
  for (const auto& e : t.events)
    events.push_back({{"name", e.kind},
                      {"cat", e.is_comm() ? "comm" : "compute"},
                      {"ph", "X"},
                      {"ts", e.start_s * 1e6},
                      {"dur", (e.end_s - e.start_s) * 1e6},
                      {"pid", 0},
                      {"tid", e.worker},
                      {"args", {{"round", e.round}, {"op", e.op}, {"bytes", e.bytes}, {"iters", e.iters}}}});
  return {{"format", "resist-timeline"}, {"version", 1},     {"source", t.source},
          {"workers", t.workers},        {"displayTimeUnit", "ms"}, {"traceEvents", events}};
}

Timeline timeline_from_json(const nlohmann::json& j) {
  const Reader root{j, ""};
  json_util::expect_format(root, "resist-timeline", 1);
  Timeline t;
  t.source = root.at("source").str();
  t.workers = int(root.at("workers").integer(0, 1 << 20));
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
    ev.iters = int(args.at("iters").integer(0, json_util::kMaxInt));
    t.events.push_back(std::move(ev));
  }
  return t;
}

void write_timeline_file(const Timeline& t, const std::string& path) {
  json_util::write_atomic(path, to_json(t).dump() + "\n");
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
