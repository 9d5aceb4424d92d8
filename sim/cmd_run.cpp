// `resist-sim run`, `sweep` and `collective`: the simulator proper.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "tools/cli.hpp"
#include "tools/progress.hpp"
#include "schedule/json_util.hpp"
#include "sim/commands.hpp"
#include "sim/run.hpp"
#include "sim/units.hpp"

namespace resist::sim {

namespace {

namespace po = cli::po;
using nlohmann::json;

// Flags every simulating command shares: the platform and its overrides.
struct PlatformFlags {
  std::string path, bandwidth, chunk = "4MiB";
  std::vector<std::string> set;
  void add(po::options_description& d) {
    d.add_options()
        ("platform", po::value(&path), "platform JSON (default: the embedded p3-8xlarge platform)")
        ("set", po::value(&set)->composing(), "override a platform field, e.g. --set nic.bandwidth=1Gbps (repeatable)")
        ("chunk-bytes", po::value(&chunk)->default_value(chunk), "pipelining chunk of broadcast/reduce chains (e.g. 4MiB)");
  }
  Platform load(const std::string& bw = "") const {
    auto o = set;
    const std::string b = bw.empty() ? bandwidth : bw;
    if (!b.empty()) {
      parse_quantity(b, Unit::bandwidth, "--bandwidth");
      o.push_back("nic.bandwidth=" + b);
    }
    return load_platform(path, o);
  }
  std::uint64_t chunk_bytes() const { return parse_bytes(chunk, "--chunk-bytes"); }
};

struct RunFlags {
  PlatformFlags platform;
  std::string profile, bucket = "25MiB";
  double backward_factor = 2;
  bool overlap = false, full = false;
  int max_simulated = 256;
  void add(po::options_description& d) {
    platform.add(d);
    d.add_options()
        ("profile", po::value(&profile), "measured per-block time profile (resist-profile JSON) instead of FLOP counts")
        ("backward-factor", po::value(&backward_factor)->default_value(backward_factor), "analytic backward cost / forward cost")
        ("overlap", po::bool_switch(&overlap), "data-parallel: all-reduce gradient buckets during backward")
        ("bucket-bytes", po::value(&bucket)->default_value(bucket), "gradient bucket size with --overlap")
        ("full", po::bool_switch(&full), "simulate every round back to back (no fast path)")
        ("max-simulated-rounds", po::value(&max_simulated)->default_value(max_simulated),
         "fast path: simulate at most this many distinct rounds, estimate the rest (0: all)");
  }
  RunOptions options(const ScheduleConfig& c) const {
    RunOptions o;
    o.schedule = c;
    o.backward_factor = backward_factor;
    if (!profile.empty()) o.profile = read_profile_file(profile);
    o.engine.chunk_bytes = platform.chunk_bytes();
    o.engine.bucket_bytes = parse_bytes(bucket, "--bucket-bytes");
    o.engine.overlap = overlap;
    o.full = full;
    o.max_simulated_rounds = max_simulated;
    return o;
  }
};

void check_format(const std::string& format, std::initializer_list<const char*> accepted) {
  std::string list;
  for (const char* a : accepted) {
    if (format == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw UserError("--format: unknown value '" + format + "' (accepted: " + list + ")");
}

json summary_json(const ModelSpec& spec, const Platform& p, const RunOptions& o, const RunResult& r) {
  const auto& c = o.schedule;
  return {{"format", "resist-sim-run"},
          {"version", 1},
          {"model", spec.name},
          {"protocol", to_string(c.protocol)},
          {"machines", c.workers},
          {"local_iters", effective_local_iters(c)},
          {"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"platform", p.name},
          {"nic_bandwidth_Bps", p.nic.bandwidth_Bps},
          {"compute_source", o.profile ? "profile measured on " + o.profile->device : std::string("analytic (platform gpu.flops)")},
          {"mode", o.full ? "full" : "fast"},
          {"wall_clock_s", r.wall_clock_s},
          {"compute_s", r.compute_s},
          {"communication_s", r.communication_s},
          {"exposed_communication_s", r.exposed_communication_s},
          {"rounds", r.rounds},
          {"distinct_rounds", r.distinct_rounds},
          {"simulated_rounds", r.simulated_rounds},
          {"total_iters", r.total_iters},
          {"bytes_per_round", r.bytes_per_round},
          {"wire_bytes_total", r.wire_bytes_total}};
}

std::string rounds_csv(const RunResult& r) {
  std::ostringstream out;
  out << "round,local_iters,start_s,duration_s,compute_s,communication_s,exposed_communication_s,wire_bytes,"
         "bytes_per_round,simulated\n";
  char buf[256];
  for (const auto& row : r.rows) {
    std::snprintf(buf, sizeof buf, "%d,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%llu,%llu,%d\n", row.round, row.local_iters,
                  row.start_s, row.duration_s, row.compute_s, row.communication_s, row.exposed_communication_s,
                  (unsigned long long)row.wire_bytes, (unsigned long long)row.bytes_per_round, row.simulated ? 1 : 0);
    out << buf;
  }
  return out.str();
}

void make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw UserError("--out: cannot create directory '" + dir + "' (" + ec.message() + ")");
}

}  // namespace

int cmd_run(int argc, char** argv) {
  ScheduleConfig c;
  std::string hidden, protocol = "resist", format = "json", out;
  RunFlags flags;
  po::options_description d("resist-sim run");
  d.add_options()("help", "this help")
      ("protocol", po::value(&protocol)->default_value(protocol), "data-parallel|local-sgd|resist|ist|layer-parallel")
      ("machines", po::value(&c.workers)->default_value(8), "workers (one per GPU)")
      ("local-iters", po::value(&c.local_iters)->default_value(c.local_iters), "local iterations per round (ℓ)")
      ("format", po::value(&format)->default_value(format), "json|table")
      ("bandwidth", po::value(&flags.platform.bandwidth), "shortcut for --set nic.bandwidth=VALUE")
      ("out", po::value(&out), "directory for summary.json, rounds.csv, timeline.json");
  cli::add_model_options(d, c.model, hidden);
  cli::add_schedule_options(d, c);
  flags.add(d);
  po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim run --model preact-resnet101 --block basic --dataset cifar100 --protocol resist "
                  "--machines 8 --local-iters 50 --epochs 160 --batch-size 128 [--platform FILE] [--set KEY=VALUE] "
                  "[--format table|json] [--out DIR]"))
    return 0;
  cli::finish_model_options(c.model, hidden);
  check_format(format, {"json", "table"});
  c.protocol = parse_protocol(protocol);
  cli::reject_layer_parallel_flags(vm, c.protocol);
  const ModelSpec spec = build_model(c.model);
  const Platform platform = flags.platform.load();
  RunOptions o = flags.options(c);
  o.timeline = !out.empty();
  const RunResult r = simulate_run(spec, platform, o);
  const json summary = summary_json(spec, platform, o, r);
  if (!out.empty()) {
    make_dir(out);
    json_util::write_atomic(out + "/rounds.csv", rounds_csv(r));
    write_timeline_file(r.timeline, out + "/timeline.json");
    json_util::write_atomic(out + "/summary.json", summary.dump(2) + "\n");
  }
  if (format == "json") {
    std::cout << summary.dump(2) << "\n";
  } else {
    std::printf("%s, %s, %d machines, ℓ=%d, %d epochs on %s\n", spec.name.c_str(), to_string(c.protocol), c.workers,
                summary["local_iters"].get<int>(), c.epochs, platform.name.c_str());
    std::printf("  wall-clock            %12.2f s\n", r.wall_clock_s);
    std::printf("  compute               %12.2f s\n", r.compute_s);
    std::printf("  communication         %12.2f s\n", r.communication_s);
    std::printf("  exposed communication %12.2f s\n", r.exposed_communication_s);
    std::printf("  rounds                %12d (%d distinct, %d simulated)\n", r.rounds, r.distinct_rounds,
                r.simulated_rounds);
    std::printf("  bytes/round           %12.3f GB (Table 1 convention)\n", r.bytes_per_round / 1e9);
    std::printf("  wire bytes, total     %12.3f GB\n", r.wire_bytes_total / 1e9);
  }
  return 0;
}

int cmd_sweep(int argc, char** argv) {
  ScheduleConfig base;
  std::string hidden, protocols = "data-parallel,local-sgd,resist", machines = "2,4,8,16,32",
                      local_iters = "10,25,50,100", bandwidths, out;
  RunFlags flags;
  po::options_description d("resist-sim sweep");
  d.add_options()("help", "this help")
      ("protocols", po::value(&protocols)->default_value(protocols), "comma-separated protocols")
      ("machines", po::value(&machines)->default_value(machines), "comma-separated worker counts")
      ("local-iters", po::value(&local_iters)->default_value(local_iters), "comma-separated ℓ values")
      ("bandwidth", po::value(&bandwidths), "comma-separated NIC bandwidths, e.g. 1Gbps,10Gbps,100Gbps")
      ("out", po::value(&out), "directory for sweep.csv and one rounds CSV per configuration (required)");
  cli::add_model_options(d, base.model, hidden);
  cli::add_schedule_options(d, base);
  flags.add(d);
  po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim sweep --protocols data-parallel,local-sgd,resist --machines 2,4,8,16,32 "
                  "--local-iters 10,25,50,100 [--platform FILE] [--bandwidth 1Gbps,10Gbps] --out DIR"))
    return 0;
  cli::finish_model_options(base.model, hidden);
  if (out.empty()) throw UserError("--out: required (a directory for the CSV files)");
  const auto protocol_list = cli::parse_protocol_list("--protocols", protocols);
  const auto machine_list = cli::parse_int_list("--machines", machines);
  const auto ell_list = cli::parse_int_list("--local-iters", local_iters);
  std::vector<std::string> bw_list = cli::parse_list(bandwidths);
  if (bw_list.empty()) bw_list.push_back("");
  const ModelSpec spec = build_model(base.model);
  // Validate everything before simulating anything.
  std::vector<Platform> platforms;
  for (const auto& bw : bw_list) {
    platforms.push_back(flags.platform.load(bw));
    for (int m : machine_list) check_ranks(platforms.back(), m, "--machines");
  }
  for (int m : machine_list) {
    ScheduleConfig c = base;
    c.workers = m;
    for (Protocol p : protocol_list) validate(spec, for_protocol(c, p));
  }
  flags.options(base);  // checks --profile, --chunk-bytes, --bucket-bytes
  make_dir(out + "/runs");

  struct Row {
    std::string bw;
    Protocol protocol;
    int machines, ell;
    json summary;
  };
  std::vector<Row> rows;
  const int total = int(bw_list.size() * protocol_list.size() * machine_list.size() * ell_list.size());
  tools::Progress progress("sweep", total, true);
  for (std::size_t b = 0; b < bw_list.size(); ++b)
    for (Protocol p : protocol_list)
      for (int m : machine_list) {
        std::map<int, json> by_ell;  // a protocol with a fixed ℓ (data-parallel) runs once
        for (int ell : ell_list) {
          ScheduleConfig c = for_protocol(base, p);
          c.workers = m;
          c.local_iters = ell;
          RunOptions o = flags.options(c);
          json summary;
          std::string name = std::string(to_string(p)) + "-m" + std::to_string(m) + "-l" + std::to_string(ell) +
                             (bw_list[b].empty() ? "" : "-" + bw_list[b]);
          const int eff = effective_local_iters(c);
          if (auto it = by_ell.find(eff); it != by_ell.end()) {
            summary = it->second;
          } else {
            const RunResult r = simulate_run(spec, platforms[b], o);
            summary = summary_json(spec, platforms[b], o, r);
            json_util::write_atomic(out + "/runs/" + name + ".csv", rounds_csv(r));
            by_ell[eff] = summary;
          }
          rows.push_back({bw_list[b], p, m, ell, summary});
          progress.step(name);
        }
      }

  // Speedups over data-parallel at the same machines (and bandwidth).
  std::map<std::pair<std::string, int>, double> dp;
  for (const auto& r : rows)
    if (r.protocol == Protocol::data_parallel) dp[{r.bw, r.machines}] = r.summary["wall_clock_s"].get<double>();
  std::ostringstream csv;
  csv << "protocol,machines,local_iters,nic_bandwidth_Bps,wall_clock_s,compute_s,communication_s,"
         "exposed_communication_s,rounds,bytes_per_round,wire_bytes_total,speedup_vs_data_parallel\n";
  std::printf("%-14s %8s %6s %12s %14s %12s %12s\n", "protocol", "machines", "ℓ", "bandwidth", "wall-clock (s)",
              "wire (GB)", "speedup×DP");
  for (const auto& r : rows) {
    const auto& s = r.summary;
    const double wall = s["wall_clock_s"].get<double>();
    auto it = dp.find({r.bw, r.machines});
    const double speedup = it != dp.end() && wall > 0 ? it->second / wall : 0;
    char line[512];
    std::snprintf(line, sizeof line, "%s,%d,%d,%.6g,%.9g,%.9g,%.9g,%.9g,%d,%llu,%llu,%.6g\n", to_string(r.protocol),
                  r.machines, r.ell, s["nic_bandwidth_Bps"].get<double>(), wall, s["compute_s"].get<double>(),
                  s["communication_s"].get<double>(), s["exposed_communication_s"].get<double>(),
                  s["rounds"].get<int>(), (unsigned long long)s["bytes_per_round"].get<std::uint64_t>(),
                  (unsigned long long)s["wire_bytes_total"].get<std::uint64_t>(), speedup);
    csv << line;
    std::printf("%-14s %8d %6d %12s %14.1f %12.2f %12s\n", to_string(r.protocol), r.machines, r.ell,
                r.bw.empty() ? "platform" : r.bw.c_str(), wall, s["wire_bytes_total"].get<std::uint64_t>() / 1e9,
                it != dp.end() ? (std::to_string(speedup).substr(0, 5) + "×").c_str() : "-");
  }
  json_util::write_atomic(out + "/sweep.csv", csv.str());
  return 0;
}

int cmd_collective(int argc, char** argv) {
  std::string op = "allreduce", bytes_text = "64MiB", format = "table";
  int ranks = 8;
  PlatformFlags pf;
  po::options_description d("resist-sim collective");
  d.add_options()("help", "this help")
      ("op", po::value(&op)->default_value(op), "allreduce|broadcast|reduce|send")
      ("bytes", po::value(&bytes_text)->default_value(bytes_text), "payload M (e.g. 67108864 or 64MiB)")
      ("ranks", po::value(&ranks)->default_value(ranks), "participants (ranks 0..n-1)")
      ("bandwidth", po::value(&pf.bandwidth), "shortcut for --set nic.bandwidth=VALUE")
      ("format", po::value(&format)->default_value(format), "table|json");
  pf.add(d);
  po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim collective --platform FILE --op allreduce|broadcast|reduce --bytes N --ranks n "
                  "[--format json]\n\nalgbw = M / time; busbw = algbw × 2(n-1)/n for allreduce, × 1 otherwise "
                  "(nccl-tests' definitions)."))
    return 0;
  check_format(format, {"json", "table"});
  OpKind kind;
  if (op == "allreduce") kind = OpKind::allreduce;
  else if (op == "broadcast") kind = OpKind::broadcast;
  else if (op == "reduce") kind = OpKind::reduce;
  else if (op == "send") kind = OpKind::send;
  else throw UserError("--op: unknown value '" + op + "' (accepted: allreduce, broadcast, reduce, send)");
  const std::uint64_t bytes = parse_bytes(bytes_text, "--bytes");
  const Platform platform = pf.load();
  EngineOptions eo;
  eo.chunk_bytes = pf.chunk_bytes();
  const CollectiveResult r = simulate_collective(platform, kind, bytes, ranks, eo);
  if (format == "json") {
    std::cout << json{{"format", "resist-sim-collective"}, {"version", 1}, {"platform", platform.name},
                      {"op", op}, {"bytes", bytes}, {"ranks", ranks}, {"time_s", r.time_s},
                      {"algbw_Bps", r.algbw_Bps}, {"busbw_Bps", r.busbw_Bps}, {"wire_bytes", r.wire_bytes}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("%-10s %14s %6s %14s %14s %14s\n", "op", "bytes", "ranks", "time (us)", "algbw (GB/s)",
                "busbw (GB/s)");
    std::printf("%-10s %14llu %6d %14.2f %14.3f %14.3f\n", op.c_str(), (unsigned long long)bytes, ranks,
                r.time_s * 1e6, r.algbw_Bps / 1e9, r.busbw_Bps / 1e9);
  }
  return 0;
}

}  // namespace resist::sim
