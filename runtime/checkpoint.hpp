#pragma once
// Checkpoints of a block-store run: DIR/checkpoints/round-R/rank-K.pt (+
// optim-K.pt when the optimizer is kept across rounds), then
// DIR/checkpoints/latest.json names R once every rank has written its files.
#include <map>
#include <string>

#include <torch/torch.h>

#include "runtime/context.hpp"

namespace resist::runtime {

// Every rank writes what it holds before round `next_round`; `optim` may be
// null; `aux` (layer-parallel: its auxiliary head's parameters, flattened)
// may be undefined.
void write_checkpoint(const std::string& out, int next_round, RunContext& ctx,
                      const std::map<int, torch::Tensor>& held, torch::optim::SGD* optim,
                      const torch::Tensor& aux = {});

struct Resumed {
  int next_round = 0;
  std::map<int, torch::Tensor> held;
  torch::Tensor aux;       // undefined: no auxiliary head
  std::string optim_file;  // empty: none written
};
// Reads the latest checkpoint of a previous --out directory; restores the
// context's wall-time, byte and image offsets.
Resumed load_checkpoint(const std::string& dir, RunContext& ctx, torch::Device device);

}  // namespace resist::runtime
