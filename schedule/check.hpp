#pragma once
// Checking a schedule's meaning, not just its format: does walking it keep
// every copy of the model consistent? Used when a schedule is read from a
// file (a hand-edited or foreign schedule must not train silently wrong).
//
// The check follows, per block, whose training updates each rank's copy
// contains (a set of ranks) through the rounds:
// - a rank training a block in round r > 0 must start the round with the
//   complete average of round r-1's updates of it (every round-0 copy is
//   the same seeded initialisation);
// - training leaves a rank's copy with its own update only; a block the rank
//   neither trains nor receives is not kept (runtime workers build only what
//   they hold);
// - allreduce: every participant must hold the block; all get the union of
//   their updates; reduce: likewise, only the root gets the union;
//   broadcast/send: the source must hold it, the others get its copy; eval
//   sends only read (rank 0 evaluates, its training copy is unchanged);
// - after the last round rank 0 holds the complete average of every block
//   (the final model is assembled there).
// - layer-parallel (a schedule with stages): activation and auxiliary-head
//   sends carry no block; between two averagings of a stage's replicas (no
//   op of the last round carried the block) a rank continues from its own
//   copy, as local SGD does within a round.
// Plus structure: rounds numbered 0.., local iterations adding up to
// total_iters, distinct ranks and blocks per op, shared blocks never dealt.
// IST schedules (neuron pieces, docs/ist.md) get the structural part only.
// Errors are UserErrors naming the JSON path, e.g.
// "rounds[2].workers[1]: trains block 7 (layer2.1) without the average of
// round 1's updates (no op of rounds[1].sync brought it)".
#include "models/spec.hpp"
#include "schedule/schedule.hpp"

namespace resist {

void check_schedule(const ModelSpec& spec, const Schedule& s);

}  // namespace resist
