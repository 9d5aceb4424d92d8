#pragma once
// The α–β replay of a simulation: the engine's rounds and collective steps
// (sim/engine.hpp, schedule/collectives.hpp) timed without SimGrid. Every
// message of a step starts when both its sender and its receiver have
// finished their previous steps and takes α + bytes/B, α and B those of the
// route between its ends. That is exactly SimGrid's answer when no two
// messages are ever in flight on one link at the same time, which holds when
// every rank is alone on its node's link to a star switch (each rank sends at
// most one and receives at most one message at a time; see collectives.hpp).
// Cost: O(messages) time, O(ranks) memory besides the events; an 8,192-rank
// ring all-reduce (134 M messages) takes about a second.
#include <vector>

#include "sim/engine.hpp"
#include "sim/platform.hpp"

namespace resist::sim {

// True when the replay gives SimGrid's times: one GPU per node, star, CM02
// with unit latency and bandwidth factors, no cross-traffic, TCP window not
// limiting, no overlap of gradient buckets.
bool alpha_beta_exact(const Platform& platform, const EngineOptions& options);

EngineResult replay_alpha_beta(const Platform& platform, int ranks, const std::vector<RoundPlan>& plans,
                               const EngineOptions& options);

}  // namespace resist::sim
