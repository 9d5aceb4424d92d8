// `resist-sim run`, `sweep` and `collective`: the simulator proper.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/format.hpp"
#include "tools/cli.hpp"
#include "tools/grid.hpp"
#include "tools/progress.hpp"
#include "schedule/json_util.hpp"
#include "schedule/protocol.hpp"
#include "sim/commands.hpp"
#include "sim/run.hpp"
#include "sim/units.hpp"

namespace resist::sim {

namespace {

namespace po = cli::po;
using nlohmann::json;

// A NIC bandwidth given by flag, checked against that flag (not --set).
void check_bandwidth(const std::string& text, const std::string& flag) {
  const double v = parse_quantity(text, Unit::bandwidth, flag);
  if (!(v > 0 && v <= 1e30)) throw UserError(flag + ": must be > 0 (got '" + text + "')");
}

// Flags every simulating command shares: the platform and its overrides.
struct PlatformFlags {
  std::string path, bandwidth, chunk = "4MiB", allreduce = "ring", reduce = "chain", broadcast = "chain",
                                    engine = "auto";
  std::vector<std::string> set;
  void add(po::options_description& d) {
    d.add_options()
        ("platform", po::value(&path), "platform JSON (default: the embedded p3-8xlarge platform)")
        ("set", po::value(&set)->composing(), "override a platform field, e.g. --set nic.bandwidth=1Gbps (repeatable)")
        ("chunk-bytes", po::value(&chunk)->default_value(chunk), "pipelining chunk of broadcast/reduce chains (e.g. 4MiB)")
        ("allreduce", po::value(&allreduce)->default_value(allreduce), "all-reduce algorithm: ring|tree|binomial|hd|hierarchical|auto")
        ("reduce", po::value(&reduce)->default_value(reduce), "reduce algorithm: chain|tree|auto")
        ("broadcast", po::value(&broadcast)->default_value(broadcast), "broadcast algorithm: chain|tree|auto")
        ("engine", po::value(&engine)->default_value(engine),
         "auto (alpha-beta where it equals SimGrid: one GPU per node on a star) | simgrid | alpha-beta");
  }
  CollectiveOptions collectives() const {
    CollectiveOptions c;
    c.allreduce = parse_algorithm(Collective::allreduce, allreduce, "--allreduce");
    c.reduce = parse_algorithm(Collective::reduce, reduce, "--reduce");
    c.broadcast = parse_algorithm(Collective::broadcast, broadcast, "--broadcast");
    c.chunk_bytes = chunk_bytes();
    return c;
  }
  EngineOptions engine_options() const {
    EngineOptions e;
    e.collectives = collectives();
    e.kind = parse_engine_kind(engine);
    return e;
  }
  Platform load(const std::string& bw = "") const {
    auto o = set;
    const std::string b = bw.empty() ? bandwidth : bw;
    if (!b.empty()) {
      check_bandwidth(b, "--bandwidth");
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
    if (!(backward_factor >= 0 && backward_factor <= 1000))
      throw UserError("--backward-factor: must be in 0..1000 (got " + std::to_string(backward_factor) + ")");
    RunOptions o;
    o.schedule = c;
    o.backward_factor = backward_factor;
    if (!profile.empty()) o.profile = read_profile_file(profile);
    o.engine = platform.engine_options();
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
  json j = {{"format", "resist-sim-run"},
          {"version", 1},
          {"model", spec.name},
          {"protocol", to_string(c.protocol)},
          {"workers", c.workers},
          {"local_iters", effective_local_iters(c)},
          {"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"platform", p.name},
          {"nic_bandwidth_Bps", p.nic.bandwidth_Bps},
          {"compute_source", o.profile ? "profile measured on " + o.profile->device : "analytic (" + gpu_speed_source(p) + ")"},
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
  // Named only when not the defaults (ring, chain, chain, 4 MiB; engine auto),
  // so that default outputs stay those recorded in tests/golden.
  const CollectiveOptions& k = o.engine.collectives;
  const CollectiveOptions d;
  if (k.allreduce != d.allreduce || k.reduce != d.reduce || k.broadcast != d.broadcast || k.chunk_bytes != d.chunk_bytes)
    j["collectives"] = {{"allreduce", to_string(k.allreduce)}, {"reduce", to_string(k.reduce)},
                        {"broadcast", to_string(k.broadcast)}, {"chunk_bytes", k.chunk_bytes}};
  if (o.engine.kind != EngineKind::automatic) j["engine"] = to_string(o.engine.kind);
  return j;
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

// One row of the sweep's printed tables: a grid row under the ℓ it is listed
// at (a protocol that fixes ℓ, data-parallel, is listed under every ℓ).
struct SweepRow {
  std::string bw;  // the --bandwidth item ("" : the platform's)
  Protocol protocol;
  int machines = 0, ell = 0;
  tools::GridRow row;
};

// The baselines a sweep's speedups are measured against: data-parallel and
// local SGD where the sweep has them, else its first protocol.
std::vector<Protocol> baselines(const std::vector<Protocol>& protocols) {
  std::vector<Protocol> b;
  for (Protocol p : {Protocol::data_parallel, Protocol::local_sgd})
    if (std::find(protocols.begin(), protocols.end(), p) != protocols.end()) b.push_back(p);
  if (b.empty()) b.push_back(protocols.front());
  return b;
}

// Wall-clock of `p` in the configuration (bandwidth, workers, ℓ) of `r`; 0 if absent.
double time_of(const std::vector<SweepRow>& rows, const SweepRow& r, Protocol p) {
  for (const auto& q : rows)
    if (q.protocol == p && q.bw == r.bw && q.machines == r.machines && q.ell == r.ell) return q.row.wall_s;
  return 0;
}

// The header of one configuration's block.
void print_sweep_header(const SweepRow& r, const std::vector<Protocol>& base) {
  std::printf("\n%g Gbit/s NIC, %d workers, ℓ = %d\n  %-14s %14s %12s %14s %10s", r.row.bw_Bps * 8 / 1e9, r.machines,
              r.ell, "protocol", "wall-clock (s)", "compute (s)", "exposed (s)", "wire (GB)");
  for (Protocol b : base) std::printf(" %18s", ("vs " + std::string(to_string(b))).c_str());
  std::printf("\n");
}

// stdout: one block per configuration (bandwidth, workers, ℓ), every protocol
// of the sweep in it, with its speedup over each baseline of the sweep.
void print_sweep(const std::vector<SweepRow>& rows, const std::vector<Protocol>& protocols, const std::string& what) {
  const auto base = baselines(protocols);
  std::printf("Simulated sweep: %s\n", what.c_str());  // names the resolved model
  std::printf("Times are whole runs; a speedup is the other protocol's time over this row's in the same "
              "configuration, for the same number of epochs (not to an accuracy).\n");
  std::vector<const SweepRow*> order;
  for (const auto& r : rows) order.push_back(&r);
  auto key = [&](const SweepRow* r) {
    const auto rank = std::find(protocols.begin(), protocols.end(), r->protocol) - protocols.begin();
    return std::make_tuple(r->row.bw_Bps, r->machines, r->ell, rank);
  };
  std::stable_sort(order.begin(), order.end(), [&](const SweepRow* a, const SweepRow* b) { return key(a) < key(b); });
  const SweepRow* group = nullptr;
  for (const SweepRow* r : order) {
    if (!group || group->bw != r->bw || group->machines != r->machines || group->ell != r->ell) {
      group = r;
      print_sweep_header(*r, base);
    }
    const auto& s = r->row;
    std::printf("  %-14s %14.1f %12.1f %14.1f %10.2f", to_string(r->protocol), s.wall_s, s.compute_s, s.exposed_s,
                s.wire_total / 1e9);
    for (Protocol b : base) {
      const double t = time_of(rows, *r, b);
      char cell[32] = "-";
      if (t > 0 && s.wall_s > 0 && !(b == Protocol::local_sgd && !takes_local_iters(r->protocol)))
        std::snprintf(cell, sizeof cell, "%.2f×", t / s.wall_s);
      std::printf(" %*s", 18 + (cell[0] == '-' ? 0 : 1), cell);  // × is two bytes, one column
    }
    std::printf("\n");
  }
}

// `resist-sim sweep`'s command line, checked.
struct SweepArgs {
  ScheduleConfig base;
  RunFlags flags;
  std::vector<Protocol> protocols;
  std::vector<int> workers, ells;
  std::vector<std::string> bandwidths;  // "" : the platform's own
  std::string out;
  ModelSpec spec;
};

// Parses the command line into `a`; false: --help was printed.
bool parse_sweep_args(int argc, char** argv, SweepArgs& a) {
  std::string hidden, protocols = "data-parallel,local-sgd,resist", machines = "2,4,8,16,32",  // workers
                      local_iters = "10,25,50,100", bandwidths;
  po::options_description d("resist-sim sweep");
  d.add_options()("help,h", "this help")
      ("protocols", po::value(&protocols)->default_value(protocols), "comma-separated protocols")
      ("local-iters", po::value(&local_iters)->default_value(local_iters), "comma-separated ℓ values")
      ("bandwidth", po::value(&bandwidths), "comma-separated NIC bandwidths, e.g. 1Gbps,10Gbps,100Gbps")
      ("out", po::value(&a.out), "directory for sweep.csv and one rounds CSV per configuration (required)");
  cli::add_workers_list_option(d, machines);
  cli::add_model_options(d, a.base.model, hidden);
  cli::add_schedule_options(d, a.base);
  a.flags.add(d);
  po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim sweep [--protocols data-parallel,local-sgd,resist] [--workers 2,4,8,16,32] "
                  "[--local-iters 10,25,50,100] [--model preact-resnet101] [--block by depth|basic|bottleneck] "
                  "[--epochs 1] [--platform FILE] [--bandwidth 1Gbps,10Gbps] --out DIR\n"
                  "(defaults shown; the default model is preact-resnet101-bottleneck-w64-cifar100, the ResIST\n"
                  "paper's network is --block basic)\n\n" +
                      std::string(platform_keys_help())))
    return false;
  cli::finish_model_options(a.base.model, hidden);
  if (a.out.empty()) throw UserError("--out: required (a directory for the CSV files)");
  a.protocols = cli::parse_protocol_list("--protocols", protocols);
  a.workers = cli::parse_int_list("--workers", machines);
  a.ells = cli::parse_int_list("--local-iters", local_iters);
  a.bandwidths = cli::parse_list(bandwidths);
  if (vm.count("bandwidth") && a.bandwidths.empty())
    throw UserError("--bandwidth: needs at least one value, e.g. 1Gbps,10Gbps (got '" + bandwidths + "')");
  for (const auto& bw : a.bandwidths) check_bandwidth(bw, "--bandwidth");
  if (a.bandwidths.empty()) a.bandwidths.push_back("");
  a.spec = build_model(a.base.model);
  cli::cap_default_min_depth(vm, a.spec, a.base);
  return true;
}

// One platform per bandwidth, after checking every configuration of the
// sweep against each: nothing is simulated before everything is valid.
std::vector<Platform> sweep_platforms(const SweepArgs& a) {
  std::vector<Platform> platforms;
  for (const auto& bw : a.bandwidths) {
    platforms.push_back(a.flags.platform.load(bw));
    for (int m : a.workers) check_ranks(platforms.back(), m, "--workers");
  }
  RunOptions check = a.flags.options(a.base);  // checks --profile, --backward-factor, --chunk-bytes, --bucket-bytes
  for (int m : a.workers)
    for (Protocol p : a.protocols)
      for (int ell : a.ells) {
        check.schedule = for_protocol(a.base, p);
        check.schedule.workers = m;
        check.schedule.local_iters = ell;
        validate(a.spec, check.schedule);
        for (const auto& platform : platforms) check_scale(a.spec, platform, check);
      }
  return platforms;
}

// Simulates the sweep's grid (tools/grid.hpp), writing runs/NAME.csv per run
// into `dir`; returns the grid's rows in order and the rows of the printed
// tables.
std::pair<std::vector<tools::GridRow>, std::vector<SweepRow>> simulate_sweep(const SweepArgs& a,
                                                                             const std::vector<Platform>& platforms,
                                                                             json_util::OutputDir& dir) {
  const tools::GridAxes axes{a.bandwidths.size(), a.protocols, a.workers, a.ells};
  const auto points = tools::grid_points(axes, tools::GridOrder::protocols_then_workers);
  tools::Progress progress("sweep", int(points.size()), true);
  auto done = [&](const tools::GridPoint& pt, const RunResult& r, const tools::GridRow&, double) {
    const std::string& bw = a.bandwidths[pt.bw];
    const std::string name = std::string(to_string(pt.protocol)) + "-m" + std::to_string(pt.workers) + "-l" +
                             std::to_string(pt.ell) + (bw.empty() ? "" : "-" + bw);
    dir.write("runs/" + name + ".csv", rounds_csv(r));
    progress.step(name);
  };
  auto rows = tools::simulate_points(a.spec, platforms, a.flags.options(a.base), points, done);
  tools::add_speedups(rows);
  std::vector<SweepRow> listed;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const auto& pt = points[i];
    for (int ell : takes_local_iters(pt.protocol) ? std::vector<int>{pt.ell} : a.ells)
      listed.push_back({a.bandwidths[pt.bw], pt.protocol, pt.workers, ell, rows[i]});
  }
  return {std::move(rows), std::move(listed)};
}

}  // namespace

int cmd_run(int argc, char** argv) {
  ScheduleConfig c;
  std::string hidden, protocol = "resist", format = "json", out;
  RunFlags flags;
  bool trace_all = false;
  po::options_description d("resist-sim run");
  d.add_options()("help,h", "this help")
      ("protocol", po::value(&protocol)->default_value(protocol), cli::protocol_choices().c_str())
      ("local-iters", po::value(&c.local_iters)->default_value(c.local_iters), "local iterations per round (ℓ)")
      ("format", po::value(&format)->default_value(format), "json|table")
      ("bandwidth", po::value(&flags.platform.bandwidth), "shortcut for --set nic.bandwidth=VALUE")
      ("out", po::value(&out), "directory for summary.json, rounds.csv, timeline.json")
      ("trace-all", po::bool_switch(&trace_all),
       "timeline.json: every round (default: all of a run up to 64 rounds; of a longer one the first and last 8 "
       "and about 48 evenly spaced)");
  cli::add_workers_option(d, c.workers, 8);
  cli::add_model_options(d, c.model, hidden);
  cli::add_schedule_options(d, c);
  flags.add(d);
  po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim run [--model preact-resnet101] [--block by depth|basic|bottleneck] "
                  "[--dataset cifar100] [--protocol resist] [--workers 8] [--local-iters 50] [--epochs 1] "
                  "[--batch-size 128] [--platform FILE] [--set KEY=VALUE] [--format json|table] [--out DIR]\n"
                  "(defaults shown; the default model is preact-resnet101-bottleneck-w64-cifar100, the ResIST\n"
                  "paper's network is --block basic)\n\n" + std::string(platform_keys_help())))
    return 0;
  cli::finish_model_options(c.model, hidden);
  check_format(format, {"json", "table"});
  c.protocol = parse_protocol(protocol);
  cli::reject_layer_parallel_flags(vm, c.protocol);
  const ModelSpec spec = build_model(c.model);
  cli::cap_default_min_depth(vm, spec, c);
  const Platform platform = flags.platform.load();
  RunOptions o = flags.options(c);
  o.timeline = !out.empty();
  o.trace.all = trace_all;
  std::optional<json_util::OutputDir> dir;  // complete or absent
  if (!out.empty()) dir.emplace(out);
  const RunResult r = simulate_run(spec, platform, o);
  const json summary = summary_json(spec, platform, o, r);
  if (dir) {
    dir->write("rounds.csv", rounds_csv(r));
    write_timeline_file(r.timeline, dir->staged("timeline.json"));
    dir->write("summary.json", summary.dump(2) + "\n");
    dir->commit();
  }
  if (format == "json") {
    std::cout << summary.dump(2) << "\n";
  } else {
    std::printf("%s, %s, %d workers, ℓ=%d, %d epochs on %s\n", spec.name.c_str(), to_string(c.protocol), c.workers,
                summary["local_iters"].get<int>(), c.epochs, platform.name.c_str());
    std::printf("  wall-clock            %12.2f s\n", r.wall_clock_s);
    std::printf("  compute               %12.2f s\n", r.compute_s);
    std::printf("  communication         %12.2f s\n", r.communication_s);
    std::printf("  exposed communication %12.2f s\n", r.exposed_communication_s);
    std::printf("  rounds                %12s (%d distinct, %d simulated)\n", thousands(std::uint64_t(r.rounds)).c_str(),
                r.distinct_rounds, r.simulated_rounds);
    std::printf("  bytes/round           %12.3f GB (Table 1 convention)\n", r.bytes_per_round / 1e9);
    std::printf("  wire bytes, total     %12.3f GB\n", r.wire_bytes_total / 1e9);
  }
  return 0;
}

int cmd_sweep(int argc, char** argv) {
  SweepArgs a;
  if (!parse_sweep_args(argc, argv, a)) return 0;
  const std::vector<Platform> platforms = sweep_platforms(a);
  json_util::OutputDir dir(a.out);  // complete or absent: a failure half-way leaves no runs/
  const auto [rows, listed] = simulate_sweep(a, platforms, dir);
  dir.write("sweep.csv", tools::grid_csv(a.spec.name, rows));
  dir.commit();
  print_sweep(listed, a.protocols, a.spec.name + ", " + std::to_string(a.base.epochs) + " epoch(s), platform " +
                                       platforms[0].name);
  return 0;
}

namespace {

// --algorithm: a comma-separated list, "all" or "auto"; empty: the op's default.
std::vector<Algorithm> algorithm_list(Collective c, const std::string& text, bool sweep) {
  if (text.empty()) return sweep ? algorithms_for(c) : std::vector<Algorithm>{algorithms_for(c).front()};
  if (text == "all") return algorithms_for(c);
  std::vector<Algorithm> out;
  for (const auto& item : cli::parse_list(text)) out.push_back(parse_algorithm(c, item, "--algorithm"));
  if (out.empty()) throw UserError("--algorithm: empty list");
  return out;
}

// nccl-tests' sizes: min, min·factor, ... up to max.
std::vector<std::uint64_t> size_list(const std::string& bytes, const std::string& min, const std::string& max,
                                     int factor) {
  if (min.empty() && max.empty()) return {parse_bytes(bytes, "--bytes")};
  if (min.empty() || max.empty()) throw UserError("--min-bytes and --max-bytes: give both (or --bytes)");
  if (factor < 2) throw UserError("--factor: must be >= 2 (got " + std::to_string(factor) + ")");
  const std::uint64_t lo = parse_bytes(min, "--min-bytes"), hi = parse_bytes(max, "--max-bytes");
  if (lo < 4 || lo > hi)
    throw UserError("--min-bytes: must be >= 4 and <= --max-bytes (got " + std::to_string(lo) + ")");
  std::vector<std::uint64_t> out;
  for (std::uint64_t b = lo; b <= hi; b *= std::uint64_t(factor)) {
    out.push_back(b);
    if (b > hi / std::uint64_t(factor)) break;
  }
  return out;
}

json collective_json(const std::string& op, std::uint64_t bytes, int ranks, const CollectiveResult& r) {
  return {{"op", op},           {"algorithm", to_string(r.algorithm)}, {"bytes", bytes},
          {"ranks", ranks},     {"time_s", r.time_s},                  {"algbw_Bps", r.algbw_Bps},
          {"busbw_Bps", r.busbw_Bps}, {"wire_bytes", r.wire_bytes}};
}

}  // namespace

int cmd_collective(int argc, char** argv) {
  std::string op = "allreduce", bytes_text = "64MiB", min_bytes, max_bytes, algorithms, format = "table";
  int ranks = 8, factor = 2;
  PlatformFlags pf;
  po::options_description d("resist-sim collective");
  d.add_options()("help,h", "this help")
      ("op", po::value(&op)->default_value(op), "allreduce|reduce|broadcast|send|allgather|reduce-scatter")
      ("algorithm", po::value(&algorithms),
       "comma-separated algorithms of the op, 'all' or 'auto' (default: the op's default; with a size sweep: all)")
      ("bytes", po::value(&bytes_text)->default_value(bytes_text), "payload M (e.g. 67108864 or 64MiB)")
      ("min-bytes", po::value(&min_bytes), "sweep sizes from this (e.g. 8) ...")
      ("max-bytes", po::value(&max_bytes), "... to this (e.g. 1GiB) ...")
      ("factor", po::value(&factor)->default_value(factor), "... multiplying by this")
      ("ranks", po::value(&ranks)->default_value(ranks), "participants (ranks 0..n-1)")
      ("bandwidth", po::value(&pf.bandwidth), "shortcut for --set nic.bandwidth=VALUE")
      ("format", po::value(&format)->default_value(format), "table|json|csv");
  pf.add(d);
  po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim collective --platform FILE --op allreduce [--algorithm ring,tree|all|auto] "
                  "(--bytes N | --min-bytes 8 --max-bytes 1GiB --factor 2) --ranks n [--format table|json|csv]\n\n"
                  "algbw = M / time; busbw = algbw × 2(n-1)/n for allreduce, × (n-1)/n for allgather and "
                  "reduce-scatter, × 1 otherwise (nccl-tests' definitions).\n\n" + std::string(platform_keys_help())))
    return 0;
  check_format(format, {"json", "table", "csv"});
  const Collective c = parse_collective(op);
  const auto sizes = size_list(bytes_text, min_bytes, max_bytes, factor);
  const auto algos = algorithm_list(c, algorithms, sizes.size() > 1);
  const Platform platform = pf.load();
  const EngineOptions eo = pf.engine_options();
  std::vector<std::pair<std::uint64_t, CollectiveResult>> rows;
  for (std::uint64_t b : sizes)
    for (Algorithm a : algos) rows.emplace_back(b, simulate_collective(platform, c, a, b, ranks, eo));
  if (format == "json") {
    json out = {{"format", "resist-sim-collective"}, {"version", 1}, {"platform", platform.name}};
    if (rows.size() == 1) {
      out.update(collective_json(op, rows[0].first, ranks, rows[0].second));
    } else {
      out["rows"] = json::array();
      for (const auto& [b, r] : rows) out["rows"].push_back(collective_json(op, b, ranks, r));
    }
    std::cout << out.dump(2) << "\n";
  } else if (format == "csv") {
    std::printf("op,algorithm,bytes,ranks,time_s,algbw_Bps,busbw_Bps,wire_bytes\n");
    for (const auto& [b, r] : rows)
      std::printf("%s,%s,%llu,%d,%.9g,%.9g,%.9g,%llu\n", op.c_str(), to_string(r.algorithm), (unsigned long long)b,
                  ranks, r.time_s, r.algbw_Bps, r.busbw_Bps, (unsigned long long)r.wire_bytes);
  } else {
    std::printf("# %s over %d ranks on %s\n", op.c_str(), ranks, platform.name.c_str());
    std::printf("%14s %-13s %14s %14s %14s\n", "size (B)", "algorithm", "time (us)", "algbw (GB/s)", "busbw (GB/s)");
    for (const auto& [b, r] : rows)
      std::printf("%14llu %-13s %14.2f %14.3f %14.3f\n", (unsigned long long)b, to_string(r.algorithm),
                  r.time_s * 1e6, r.algbw_Bps / 1e9, r.busbw_Bps / 1e9);
  }
  return 0;
}

}  // namespace resist::sim
