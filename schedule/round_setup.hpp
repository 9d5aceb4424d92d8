#pragma once
// What a worker does before a round's iterations: whether it builds its
// network anew and which blocks' values it copies into the network. The
// schedule decides it once; the simulator charges it (sim/cost.hpp) and the
// runtime's parameter stores do it (runtime/param_store.hpp), refusing a
// set-up that disagrees with what they know is still in the network.
//
// The rule (docs/simulator.md, "Round set-up"):
//  - neuron slices (Holding::slices, IST): a new subnet every round: rebuild,
//    and copy every block's slices in;
//  - the first round a worker runs: rebuild; round 0's values are the
//    network's seeded initial weights (nothing to copy), a resumed run's first
//    round copies every block it trains from the checkpoint;
//  - the sorted set of trained blocks changed (ResIST): rebuild and copy every
//    block it trains;
//  - otherwise the network is kept, and a block's value is still in it unless
//    one of the previous round's round-end ops on this worker (any payload but
//    an auxiliary head's) gave the block a value here or took it away: only
//    those blocks are copied. Data-parallel rounds (their ops run on the
//    gradients, per iteration) copy nothing; local SGD copies what its
//    all-reduces averaged.
#include <vector>

#include "schedule/schedule.hpp"

namespace resist {

struct RoundSetup {
  bool rebuild = false;             // the network (and its optimizer) built anew
  std::vector<int> reload_blocks;   // blocks whose values are copied into the network, ascending
  bool operator==(const RoundSetup&) const = default;
};

// Worker `worker`'s set-up before `round`. `previous`: the round it ran
// before (null: `round` is the first this worker runs).
RoundSetup round_setup(const Schedule& header, const Round* previous, const Round& round, int worker);

}  // namespace resist
