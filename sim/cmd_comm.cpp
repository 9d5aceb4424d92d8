// `resist-sim comm` and `resist-sim schedule`: the scheduling core on its own,
// no simulation.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "schedule/format.hpp"
#include "tools/comm_table.hpp"
#include "tools/cli.hpp"
#include "sim/commands.hpp"

namespace resist::sim {

using tools::CommRow;
using tools::comm_row;

// stdout in the chosen format: json, csv or a table.
static void print_comm(const ModelSpec& spec, const std::vector<CommRow>& rows, const std::string& format, int sample) {
  if (format == "json") {
    nlohmann::json out = {{"format", "resist-comm"}, {"version", 1}, {"model", spec.name},
                          {"params_total", spec.param_count()}, {"rows", nlohmann::json::array()}};
    for (const auto& r : rows)
      out["rows"].push_back({{"protocol", to_string(r.protocol)}, {"workers", r.machines},
                             {"local_iters", r.local_iters}, {"bytes_per_round", r.bytes_per_round},
                             {"wire_bytes_per_round", r.wire_bytes_per_round},
                             {"wire_bytes_per_round_max", r.wire_bytes_per_round_max},
                             {"wire_bytes_per_worker_max", r.wire_bytes_per_worker_max},
                             {"params_per_worker", r.params_per_worker}, {"rounds_sampled", r.rounds_sampled}});
    std::cout << out.dump(2) << "\n";
  } else if (format == "csv") {
    std::cout << "model,protocol,workers,local_iters,params_per_worker,bytes_per_round,wire_bytes_per_round,"
                 "wire_bytes_per_worker_max\n";
    for (const auto& r : rows)
      std::printf("%s,%s,%d,%d,%llu,%llu,%.1f,%.1f\n", spec.name.c_str(), to_string(r.protocol), r.machines,
                  r.local_iters,
                  (unsigned long long)r.params_per_worker, (unsigned long long)r.bytes_per_round,
                  r.wire_bytes_per_round, r.wire_bytes_per_worker_max);
  } else {
    std::printf("Per-round communication, %s (%s parameters)\n", spec.name.c_str(),
                thousands(spec.param_count()).c_str());
    std::printf("%-14s %8s %16s %18s %17s %17s\n", "protocol", "workers", "params/worker", "bytes/round (GB)",
                "wire/round (GB)", "busiest (GB)");
    for (const auto& r : rows)
      std::printf("%-14s %8d %16s %18.3f %17.3f %17.3f\n", to_string(r.protocol), r.machines,
                  thousands(r.params_per_worker).c_str(), r.bytes_per_round / 1e9, r.wire_bytes_per_round / 1e9,
                  r.wire_bytes_per_worker_max / 1e9);
    std::printf("bytes/round: Table 1 convention (each worker receives and returns its fp32 model once per round).\n"
                "wire/round: bytes the ring/chain algorithms send, all workers, mean of %d rounds; "
                "busiest: the most any one worker sends.\n", sample);
  }
}

int cmd_comm(int argc, char** argv) {
  ModelOptions model;
  ScheduleConfig base;
  std::string hidden, workers = "2,4,8", protocols = "local-sgd,resist", format = "table";
  int sample = 10;
  cli::po::options_description d("resist-sim comm");
  d.add_options()("help,h", "this help")
      ("protocols", cli::po::value(&protocols)->default_value(protocols),
       ("comma-separated, of " + cli::protocol_choices()).c_str())
      ("local-iters", cli::po::value(&base.local_iters)->default_value(base.local_iters), "local iterations per round (ℓ)")
      ("sample-rounds", cli::po::value(&sample)->default_value(sample), "rounds averaged for the wire figures")
      ("format", cli::po::value(&format)->default_value(format), "table|json|csv");
  cli::add_workers_list_option(d, workers);
  cli::add_model_options(d, model, hidden);
  cli::add_schedule_options(d, base);
  cli::po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim comm [--model preact-resnet101] [--block by depth|basic|bottleneck] "
                  "[--dataset cifar100] [--workers 2,4,8] [--protocols local-sgd,resist] [--format table|json|csv]\n"
                  "(defaults shown; the default model is preact-resnet101-bottleneck-w64-cifar100, the ResIST\n"
                  "paper's network is --block basic)\n\n"
                  "bytes_per_round: the ResIST paper's Table 1 convention (every worker receives and sends back\n"
                  "its fp32 (sub-)model once per round; summed over workers). wire_bytes_per_round: what the\n"
                  "ring all-reduce / chain reduce / broadcast / send algorithms put on the wire (see docs)."))
    return 0;
  cli::finish_model_options(model, hidden);
  if (format != "table" && format != "json" && format != "csv")
    throw UserError("--format: unknown value '" + format + "' (accepted: table, json, csv)");
  if (sample < 1 || sample > 10000)
    throw UserError("--sample-rounds: must be in 1..10000 (got " + std::to_string(sample) + ")");
  const auto machine_list = cli::parse_int_list("--workers", workers);
  const auto protocol_list = cli::parse_protocol_list("--protocols", protocols);
  base.model = model;
  const ModelSpec spec = build_model(model);
  cli::cap_default_min_depth(vm, spec, base);
  // Every configuration is checked as given (--epochs 0, --rounds -1, ...)
  // before comm_row() replaces the run length by the sampled rounds.
  for (Protocol p : protocol_list)
    for (int m : machine_list) {
      ScheduleConfig c = for_protocol(base, p);
      c.workers = m;
      validate(spec, c);
    }

  std::vector<CommRow> rows;
  for (Protocol p : protocol_list)
    for (int m : machine_list) {
      ScheduleConfig c = for_protocol(base, p);
      c.workers = m;
      rows.push_back(comm_row(spec, c, sample));
    }

  print_comm(spec, rows, format, sample);
  return 0;
}

int cmd_schedule(int argc, char** argv) {
  ScheduleConfig c;
  std::string hidden, protocol = "resist", out, check;
  cli::po::options_description d("resist-sim schedule");
  d.add_options()("help,h", "this help")
      ("protocol", cli::po::value(&protocol)->default_value(protocol), cli::protocol_choices().c_str())
      ("local-iters", cli::po::value(&c.local_iters)->default_value(c.local_iters), "local iterations per round (ℓ)")
      ("out", cli::po::value(&out), "output file (default: stdout)")
      ("check", cli::po::value(&check), "read this schedule file, check it against its model and itself, print a "
                                         "summary (exit 2 naming the JSON path of the first problem)");
  cli::add_workers_option(d, c.workers, 4);
  cli::add_model_options(d, c.model, hidden);
  cli::add_schedule_options(d, c);
  cli::po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim schedule [--model preact-resnet101] [--block by depth|basic|bottleneck] "
                  "[--protocol resist] [--workers 4] [--rounds N] [--seed 1] [--out FILE]\n"
                  "       resist-sim schedule --check FILE\n"
                  "(defaults shown; the default model is preact-resnet101-bottleneck-w64-cifar100, the ResIST\n"
                  "paper's network is --block basic)"))
    return 0;
  if (!check.empty()) {
    const Schedule s = read_schedule_file(check);
    std::printf("%s: %s schedule of %s, %d workers, %zu rounds: ok\n", check.c_str(), to_string(s.config.protocol),
                build_model(s.config.model).name.c_str(), s.config.workers, s.rounds.size());
    return 0;
  }
  cli::finish_model_options(c.model, hidden);
  c.protocol = parse_protocol(protocol);
  cli::reject_layer_parallel_flags(vm, c.protocol);
  const ModelSpec spec = build_model(c.model);
  cli::cap_default_min_depth(vm, spec, c);
  const Schedule s = make_schedule(spec, c);
  if (out.empty()) std::cout << to_json(s).dump(1) << "\n";
  else write_schedule_file(s, out);
  return 0;
}

}  // namespace resist::sim
