// resist-sim: predicts what distributed training of a residual network costs.
// The subcommands are in cmd_comm.cpp (comm, schedule) and cmd_run.cpp (run,
// sweep, collective). A simulated run: sim/run.cpp turns the schedule's
// rounds into plans; the worker loop each simulated GPU runs is worker() in
// sim/engine.cpp.
#include <cstring>
#include <iostream>
#include <string>

#include "tools/cli.hpp"
#include "sim/commands.hpp"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* help;
};
constexpr Command kCommands[] = {
    {"comm", resist::sim::cmd_comm, "per-round communication table (ResIST paper, Table 1)"},
    {"schedule", resist::sim::cmd_schedule, "write a schedule as JSON"},
    {"run", resist::sim::cmd_run, "simulate one training run (wall-clock, compute, communication, bytes)"},
    {"sweep", resist::sim::cmd_sweep, "simulate protocols × machines × ℓ [× bandwidths], speedups over data-parallel"},
    {"collective", resist::sim::cmd_collective, "simulate one collective, like nccl-tests (time, algbw, busbw)"},
};

void usage(std::ostream& out) {
  out << "usage: resist-sim COMMAND [options]   (resist-sim COMMAND --help for its options)\n\ncommands:\n";
  for (const auto& c : kCommands) out << "  " << c.name << std::string(12 - std::strlen(c.name), ' ') << c.help << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands)
    if (!std::strcmp(argv[1], c.name))
      return resist::cli::guarded(std::string("resist-sim ") + c.name, [&] { return c.run(argc - 1, argv + 1); });
  std::cerr << "resist-sim: unknown command '" << argv[1] << "' (accepted:";
  for (const auto& c : kCommands) std::cerr << " " << c.name;
  std::cerr << ")\n";
  return 2;
}
