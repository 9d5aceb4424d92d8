// `resist-sim comm` and `resist-sim schedule`: the scheduling core on its own,
// no simulation.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "models/error.hpp"
#include "tools/comm_table.hpp"
#include "tools/cli.hpp"
#include "sim/commands.hpp"

namespace resist::sim {

using tools::CommRow;
using tools::comm_row;

int cmd_comm(int argc, char** argv) {
  ModelOptions model;
  ScheduleConfig base;
  std::string hidden, machines = "2,4,8", protocols = "local-sgd,resist", format = "table";
  int sample = 10;
  cli::po::options_description d("resist-sim comm");
  d.add_options()("help", "this help")
      ("machines", cli::po::value(&machines)->default_value(machines), "comma-separated worker counts")
      ("protocols", cli::po::value(&protocols)->default_value(protocols),
       "data-parallel,local-sgd,resist,ist,layer-parallel")
      ("local-iters", cli::po::value(&base.local_iters)->default_value(base.local_iters), "local iterations per round (ℓ)")
      ("sample-rounds", cli::po::value(&sample)->default_value(sample), "rounds averaged for the wire figures")
      ("format", cli::po::value(&format)->default_value(format), "table|json|csv");
  cli::add_model_options(d, model, hidden);
  cli::add_schedule_options(d, base);
  cli::po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim comm --model preact-resnet101 --block basic --dataset cifar100 "
                  "--machines 2,4,8 --protocols local-sgd,resist [--format table|json|csv]\n\n"
                  "bytes_per_round: the ResIST paper's Table 1 convention (every machine receives and sends back\n"
                  "its fp32 (sub-)model once per round; summed over machines). wire_bytes_per_round: what the\n"
                  "ring all-reduce / chain reduce / broadcast / send algorithms put on the wire (see docs)."))
    return 0;
  cli::finish_model_options(model, hidden);
  if (format != "table" && format != "json" && format != "csv")
    throw UserError("--format: unknown value '" + format + "' (accepted: table, json, csv)");
  if (sample < 1) throw UserError("--sample-rounds: must be >= 1 (got " + std::to_string(sample) + ")");
  const auto machine_list = cli::parse_int_list("--machines", machines);
  const auto protocol_list = cli::parse_protocol_list("--protocols", protocols);
  base.model = model;
  const ModelSpec spec = build_model(model);

  std::vector<CommRow> rows;
  for (Protocol p : protocol_list)
    for (int m : machine_list) {
      ScheduleConfig c = for_protocol(base, p);
      c.workers = m;
      rows.push_back(comm_row(spec, c, sample));
    }

  if (format == "json") {
    nlohmann::json out = {{"format", "resist-comm"}, {"version", 1}, {"model", spec.name},
                          {"params_total", spec.param_count()}, {"rows", nlohmann::json::array()}};
    for (const auto& r : rows)
      out["rows"].push_back({{"protocol", to_string(r.protocol)}, {"machines", r.machines},
                             {"local_iters", r.local_iters}, {"bytes_per_round", r.bytes_per_round},
                             {"wire_bytes_per_round", r.wire_bytes_per_round},
                             {"wire_bytes_per_round_max", r.wire_bytes_per_round_max},
                             {"wire_bytes_per_worker_max", r.wire_bytes_per_worker_max},
                             {"params_per_worker", r.params_per_worker}, {"rounds_sampled", r.rounds_sampled}});
    std::cout << out.dump(2) << "\n";
  } else if (format == "csv") {
    std::cout << "protocol,machines,local_iters,params_per_worker,bytes_per_round,wire_bytes_per_round,"
                 "wire_bytes_per_worker_max\n";
    for (const auto& r : rows)
      std::printf("%s,%d,%d,%llu,%llu,%.1f,%.1f\n", to_string(r.protocol), r.machines, r.local_iters,
                  (unsigned long long)r.params_per_worker, (unsigned long long)r.bytes_per_round,
                  r.wire_bytes_per_round, r.wire_bytes_per_worker_max);
  } else {
    std::printf("Per-round communication, %s (%llu parameters)\n", spec.name.c_str(),
                (unsigned long long)spec.param_count());
    std::printf("%-14s %8s %16s %18s %17s %17s\n", "protocol", "machines", "params/worker", "bytes/round (GB)",
                "wire/round (GB)", "busiest (GB)");
    for (const auto& r : rows)
      std::printf("%-14s %8d %16llu %18.3f %17.3f %17.3f\n", to_string(r.protocol), r.machines,
                  (unsigned long long)r.params_per_worker, r.bytes_per_round / 1e9, r.wire_bytes_per_round / 1e9,
                  r.wire_bytes_per_worker_max / 1e9);
    std::printf("bytes/round: Table 1 convention (each machine receives and returns its fp32 model once per round).\n"
                "wire/round: bytes the ring/chain algorithms send, all machines, mean of %d rounds; "
                "busiest: the most any one machine sends.\n", sample);
  }
  return 0;
}

int cmd_schedule(int argc, char** argv) {
  ScheduleConfig c;
  std::string hidden, protocol = "resist", out;
  cli::po::options_description d("resist-sim schedule");
  d.add_options()("help", "this help")
      ("protocol", cli::po::value(&protocol)->default_value(protocol),
       "data-parallel|local-sgd|resist|ist|layer-parallel")
      ("machines", cli::po::value(&c.workers)->default_value(4), "workers (S)")
      ("local-iters", cli::po::value(&c.local_iters)->default_value(c.local_iters), "local iterations per round (ℓ)")
      ("out", cli::po::value(&out), "output file (default: stdout)");
  cli::add_model_options(d, c.model, hidden);
  cli::add_schedule_options(d, c);
  cli::po::variables_map vm;
  if (!cli::parse(argc, argv, d, vm,
                  "usage: resist-sim schedule --model M --dataset D --protocol resist --machines 4 --rounds 3 "
                  "--seed 1 --out FILE"))
    return 0;
  cli::finish_model_options(c.model, hidden);
  c.protocol = parse_protocol(protocol);
  cli::reject_layer_parallel_flags(vm, c.protocol);
  const Schedule s = make_schedule(build_model(c.model), c);
  if (out.empty()) std::cout << to_json(s).dump(1) << "\n";
  else write_schedule_file(s, out);
  return 0;
}

}  // namespace resist::sim
