#pragma once
// resist-sim sub-commands. Each takes argv with argv[0] = the sub-command name
// and returns the exit code; user errors throw UserError.
namespace resist::sim {

int cmd_comm(int argc, char** argv);
int cmd_schedule(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_sweep(int argc, char** argv);
int cmd_collective(int argc, char** argv);
int cmd_presets(int argc, char** argv);

}  // namespace resist::sim
