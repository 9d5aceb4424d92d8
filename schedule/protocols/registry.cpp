// The registry of protocols: one line per protocol file in this folder.
#include <algorithm>

#include "models/error.hpp"
#include "schedule/protocol.hpp"

namespace resist {

std::unique_ptr<ProtocolRules> make_data_parallel(const ScheduleConfig& config);
std::unique_ptr<ProtocolRules> make_local_sgd(const ScheduleConfig& config);
std::unique_ptr<ProtocolRules> make_resist(const ScheduleConfig& config);
std::unique_ptr<ProtocolRules> make_ist(const ScheduleConfig& config);
std::unique_ptr<ProtocolRules> make_layer_parallel(const ScheduleConfig& config);

namespace {
using Factory = std::unique_ptr<ProtocolRules> (*)(const ScheduleConfig&);
constexpr std::pair<Protocol, Factory> kRegistry[] = {
    {Protocol::data_parallel, make_data_parallel},
    {Protocol::local_sgd, make_local_sgd},
    {Protocol::resist, make_resist},
    {Protocol::ist, make_ist},
    {Protocol::layer_parallel, make_layer_parallel},
};
}  // namespace

std::unique_ptr<ProtocolRules> make_protocol(const ScheduleConfig& c) {
  for (const auto& [protocol, factory] : kRegistry)
    if (protocol == c.protocol) return factory(c);
  return nullptr;
}

std::vector<std::vector<int>> ProtocolRules::holdings(int) const { return {}; }

void reject_warmup(const ScheduleConfig& c) {
  if (c.warmup_epochs > 0)
    throw UserError("--warmup-epochs: only with --protocol resist (got --protocol " + std::string(to_string(c.protocol)) +
                    ")");
}

void add_allreduce_all(Round& round, const ModelSpec& spec, int workers, Payload payload,
                       const std::vector<int>& blocks, Phase phase) {
  if (workers < 2) return;
  CommOp op{OpKind::allreduce, payload, all_indices(workers), blocks, spec.bytes(blocks)};
  op.phase = phase;
  round.sync.push_back(std::move(op));
}

std::vector<int> all_indices(int n) {
  std::vector<int> r(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) r[std::size_t(i)] = i;
  return r;
}

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace resist
