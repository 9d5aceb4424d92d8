#pragma once
// IST (independent subnet training, Yuan et al., VLDB 2022) for MLPs: which
// neurons every worker gets in a round, which parameter elements that makes,
// and the element sets that IST's sync ops carry. docs/ist.md explains the
// design; the short version:
//
// Every round r, the neurons of each hidden layer l are permuted with
// Rng(seed, r) (layer 0 first, one generator per round) and dealt into S
// contiguous runs of the permutation, the first H_l % S runs one longer;
// worker w gets run w, sorted ascending. Worker w then trains a small MLP:
//   first hidden weight   W[rows n_0(w), all columns]         role rows
//   hidden bias, BN w/b   v[n_l(w)]                            role vector
//   hidden-to-hidden      W[rows n_l(w), columns n_{l-1}(w)]   role block
//   output weight         W[all rows, columns n_last(w)]       role cols
//   output bias           whole, all-reduced (averaged)        role shared
// so a worker holds between 1/S^2 and 1/S of the weights.
//
// Only the hidden-to-hidden weights have elements nobody trains in a round
// (the off-diagonal blocks n_l(i) x n_{l-1}(j), i != j). In the decentralised
// variant each such element is stored at a fixed "home": the worker whose
// contiguous chunk of rows (ring_chunk(H_l, S, w)) contains its row.
//   held(r, w) = trained(r, w) + {untrained-in-r elements whose home is w}
// partitions the whole model (every partitioned element is in exactly one
// held(r, w)), and one round's sync moves held(r, ·) to held(r + 1, ·).
#include <cstdint>
#include <vector>

#include "schedule/schedule.hpp"

namespace resist {

enum class IstRole { shared, rows, vector, block, cols };
const char* to_string(IstRole r);

// How IST treats one parameter of the spec.
struct IstParam {
  int block = 0, param = 0;  // spec.blocks[block].params[param]
  IstRole role = IstRole::shared;
  int layer = -1;            // hidden layer (0-based) whose neurons index its rows (cols: its columns)
  std::int64_t rows = 0, cols = 1;  // shape; cols = 1 for 1-D parameters
};

struct IstPartition {
  int round = 0;
  // neurons[l][w]: the neurons of hidden layer l that worker w gets, ascending.
  std::vector<std::vector<std::vector<std::int64_t>>> neurons;
  // owner[l][n]: the worker that gets neuron n of hidden layer l.
  std::vector<std::vector<int>> owner;
};

// A worker's slice of one parameter: t.index_select(0, rows) and, for 2-D
// parameters, .index_select(1, cols). Indices ascending; `cols` is empty for
// 1-D parameters. The worker's local subnet uses exactly these sub-tensors.
struct IstSlice {
  int block = 0, param = 0;
  IstRole role = IstRole::shared;
  std::vector<std::int64_t> rows, cols;
  std::uint64_t numel() const { return rows.size() * (cols.empty() ? 1 : cols.size()); }
};

class IstPlan {
 public:
  // Throws UserError unless `spec` is an MLP whose every hidden layer has at
  // least `workers` neurons.
  IstPlan(const ModelSpec& spec, int workers, std::uint64_t seed);

  const ModelSpec& spec() const { return spec_; }
  int workers() const { return workers_; }
  int hidden_layers() const { return int(hidden_.size()); }
  const std::vector<IstParam>& params() const { return params_; }  // every spec parameter, spec order
  const IstParam& param(int block, int param) const;

  IstPartition partition(int round) const;
  // Worker w's slice of every spec parameter (shared ones whole), spec order.
  std::vector<IstSlice> worker_slices(const IstPartition& p, int worker) const;
  // Worker w's subnet is itself an MLP: the spec's options with hidden sizes
  // |n_l(w)|. build_model() of these gives the same blocks and parameters, in
  // the same order, with the shapes of worker_slices(p, w).
  ModelOptions subnet_options(const IstPartition& p, int worker) const;
  // Elements worker w trains in p's round, shared parameters excluded.
  std::uint64_t trained_params(const IstPartition& p, int worker) const;
  std::uint64_t shared_params() const { return shared_params_; }
  // Home of the untrained elements in row `row` of a `block` parameter of hidden layer `layer`.
  int home(int layer, std::int64_t row) const;

  // Elements of spec parameter (block, param) in both piece.from and
  // piece.to, as ascending flat (row-major) indices into the full tensor.
  // This is the order in which an op with this piece carries them.
  std::vector<std::int64_t> piece_indices(const IstPiece& piece, int block, int param) const;
  // How many elements of `block` (all its parameters) the piece has.
  std::uint64_t piece_numel(const IstPiece& piece, int block) const;
  // The same with the partitions of the piece's rounds already computed
  // (pass any partition for a set without a round).
  std::uint64_t piece_numel(const IstPiece& piece, int block, const IstPartition& from,
                            const IstPartition& to) const;
  // True if element `flat` of (block, param) is in the set.
  bool contains(const IstSet& set, const IstPartition& p, int block, int param, std::int64_t flat) const;

 private:
  ModelSpec spec_;
  int workers_ = 1;
  std::uint64_t seed_ = 0;
  std::vector<std::int64_t> hidden_;  // neurons per hidden layer
  std::vector<IstParam> params_;
  std::vector<int> first_param_;      // per block: index into params_
  std::uint64_t shared_params_ = 0;
};

// Rejects anything IST cannot partition (UserError naming the flag).
void validate_ist(const ModelSpec& spec, int workers);

}  // namespace resist
