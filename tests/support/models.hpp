#pragma once
// Model specs the tests use again and again.
#include <string>
#include <vector>

#include "models/spec.hpp"

namespace resist::test {

inline ModelSpec resnet(const std::string& model, const std::string& block, const std::string& dataset,
                        int width = 64) {
  ModelOptions o;
  o.model = model;
  o.block = block;
  o.dataset = dataset;
  o.base_width = width;
  return build_model(o);
}

// An MLP on Fashion-MNIST with these hidden sizes (IST's model).
inline ModelSpec mlp(const std::vector<int>& hidden) {
  ModelOptions o;
  o.model = "mlp";
  o.dataset = "fashion-mnist";
  o.hidden = hidden;
  return build_model(o);
}

// The ResIST paper's CIFAR-100 model: preact-resnet101 with basic blocks.
inline ModelSpec paper_model() { return resnet("preact-resnet101", "basic", "cifar100"); }

}  // namespace resist::test
