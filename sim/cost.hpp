#pragma once
// Compute cost of one local iteration of a worker's (sub-)model.
//
// Analytic (default): per block, forward FLOPs per sample (models/spec.hpp)
// times the batch, backward = backward_factor × forward (2 by default: the
// gradients with respect to inputs and to weights each cost about one
// forward), at the GPU's effective FLOP/s times the rank's speed factor; plus
// the platform's per-iteration overhead and the optimizer step
// (optimizer_step_per_param × parameters the worker holds).
//
// Measured: a resist-profile (schedule/profile.hpp) gives forward and backward
// seconds per block at its batch size (which must be ours), its own
// per-iteration overhead and optimizer step time per parameter; the rank's
// speed factor still divides the block times.
//
// Straggler noise: in each (rank, round), with the platform's probability
// (seeded, reproducible), the round's compute takes `slowdown` times longer.
//
// Variability (profiles with iteration samples, schedule/profile.hpp): each
// of a round's iterations on a rank takes the profile's time times a factor
// drawn from what the profile measured with as many processes at once as
// the platform puts on the rank's node (on a CPU node, the ranks placed
// there; on a GPU platform, one): every timed iteration divided by the
// profile's median iteration and by the share of a core the simulator
// already gives each of those processes (max(1, processes / (cores /
// threads)), as the profile's machine had them). So a round's compute is the
// mean of its draws (iterations that ran slow), ranks differ from one
// another in every round (the synchronisation waits for the slowest), and
// more ranks than cores pay what the profile measured beyond an even share
// of the cores. Draws are seeded by (round, rank): reproducible. No samples
// for that many processes: the largest fewer; none: no variability.
#include <map>
#include <optional>
#include <vector>

#include "models/spec.hpp"
#include "schedule/profile.hpp"
#include "schedule/round_setup.hpp"
#include "sim/platform.hpp"

namespace resist::sim {

class ComputeModel {
 public:
  // Throws UserError when the profile does not cover the spec's blocks.
  // `workers`: the ranks the platform holds in this run (0: no variability).
  ComputeModel(const ModelSpec& spec, const Platform& platform, int batch_size, double backward_factor,
               std::optional<Profile> profile, int workers = 0);
  // One iteration over `blocks` (all the blocks the worker trains), without noise.
  // `subnet` (IST): the worker trains a smaller model with the same blocks in
  // the same order (IstPlan::subnet_options); its FLOPs and parameter counts
  // replace the full spec's (a profile's block times are scaled by the FLOP ratio).
  double iteration_s(const std::vector<int>& blocks, int rank, const ModelSpec* subnet = nullptr) const;
  // One iteration's forward + backward of an auxiliary head (layer-parallel
  // training) plus its optimizer step. Analytic as a block; with a profile,
  // its FLOPs at the profile's mean seconds per FLOP (profiles time blocks only).
  double aux_head_s(const AuxHeadSpec& head, int rank) const;
  // Fraction of an iteration spent in backward (for overlapping the gradient all-reduce).
  double backward_fraction(const std::vector<int>& blocks, int rank, const ModelSpec* subnet = nullptr) const;
  // Per round, before its iterations (profiles only; 0 without one): what
  // the schedule says the worker does (schedule/round_setup.hpp), at the
  // profile's whole-model figures: `reload_s` times the share of the model's
  // parameters in setup.reload_blocks (their values copied into the network
  // and taken out after training), plus, when setup.rebuild, `rebuild_s`
  // times the share in `trained` (the network and optimizer built anew).
  // IST (a `subnet`): the reload is the subnet's bytes in reload_blocks at
  // the profile's `ist_pack_s_per_byte` (slices by element index), where the
  // profile has that figure.
  // `trained`: all the blocks the worker trains.
  double round_setup_s(const std::vector<int>& trained, const RoundSetup& setup, int rank,
                       const ModelSpec* subnet = nullptr) const;
  // Per byte of a sync op's payload, on each participant (profiles only; 0
  // without one): packing the values into one buffer and back, by element
  // index for IST's slices.
  double pack_s_per_byte(bool ist) const;
  // The round's compute: local_iters iterations, each times its drawn
  // variability factor, times the straggler slowdown if it hits.
  double round_s(const std::vector<int>& blocks, int rank, int round, int local_iters,
                 const ModelSpec* subnet = nullptr) const;

 private:
  double block_fwd_s(int block, int rank, const ModelSpec* subnet) const;
  double block_bwd_s(int block, int rank, const ModelSpec* subnet) const;
  const ModelSpec& spec_;
  const Platform& platform_;
  int batch_size_;
  double backward_factor_;
  std::optional<Profile> profile_;
  std::vector<double> profile_fwd_s_, profile_bwd_s_;  // per spec block, at our batch size
  // Variability factors per processes-at-once count, and which count each rank draws from (0: none).
  std::map<int, std::vector<double>> variability_;
  std::vector<int> variability_of_rank_;
  void set_variability(int workers);
};

}  // namespace resist::sim
