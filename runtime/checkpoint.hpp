#pragma once
// Checkpoints of a block-store run: DIR/checkpoints/round-R/rank-K.pt (+
// optim-K.pt when the optimizer is kept across rounds), then
// DIR/checkpoints/latest.json names R and the run's configuration
// (checkpoint_config() of run_record.hpp) once every rank has written its files.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "runtime/context.hpp"

namespace resist::runtime {

// Every rank writes what it holds before round `next_round`; `optim` may be
// null; rank 0 records `config` in latest.json; `aux` (layer-parallel: its
// auxiliary head's parameters, flattened) may be undefined.
void write_checkpoint(const std::string& out, int next_round, RunContext& ctx,
                      const std::map<int, torch::Tensor>& held, torch::optim::SGD* optim,
                      const nlohmann::json& config, const torch::Tensor& aux = {});

// What a checkpoint must agree with to continue this run.
struct ResumeCheck {
  nlohmann::json config;                   // this run's checkpoint_config()
  int num_rounds = 0;                      // this run's rounds
  std::vector<std::int64_t> block_numel;   // fp32 values of every block of the model
  std::function<std::vector<int>(int next_round)> held;  // the blocks this rank holds before next_round
};

struct Resumed {
  int next_round = 0;
  std::map<int, torch::Tensor> held;
  torch::Tensor aux;       // undefined: no auxiliary head
  std::string optim_file;  // empty: none written
};
// Reads the latest checkpoint of a previous --out directory (before the
// rendezvous: nothing here talks to other ranks). A checkpoint of another
// configuration, one with no rounds left to train, or a missing, truncated
// or corrupt file is a UserError (one line naming the field or the file).
// Restores the context's wall-time, byte and image offsets.
Resumed load_checkpoint(const std::string& dir, const ResumeCheck& check, RunContext& ctx, torch::Device device);

}  // namespace resist::runtime
