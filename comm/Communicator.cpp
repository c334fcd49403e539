#include "comm/Communicator.hpp"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>

namespace moe {

std::vector<int> number_nodes(std::span<const int64_t> key_of_rank) {
  std::map<int64_t, int> node_of_key;
  std::vector<int> node(key_of_rank.size());
  for (size_t r = 0; r < key_of_rank.size(); ++r)
    node[r] = node_of_key.try_emplace(key_of_rank[r], static_cast<int>(node_of_key.size())).first->second;
  return node;
}

void Communicator::allreduce_sum_floats(std::span<float> values) {
  const size_t n = values.size(), P = static_cast<size_t>(size());
  if (P == 1 || n == 0) return;
  std::vector<double> mine(values.begin(), values.end()), all(n * P);
  allgather(mine, all);
  for (size_t i = 0; i < n; ++i) {
    double acc = 0.0;
    for (size_t r = 0; r < P; ++r) acc += all[r * n + i];
    values[i] = static_cast<float>(acc);
  }
}

const std::vector<int>& Communicator::node_of_rank() {
  if (node_of_rank_.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    const int64_t key = static_cast<int64_t>(std::hash<std::string>{}(host) >> 1);
    std::vector<int64_t> keys(static_cast<size_t>(size()));
    allgather(std::span<const int64_t>(&key, 1), keys);
    node_of_rank_ = number_nodes(keys);
  }
  return node_of_rank_;
}

std::vector<std::string> gather_hostnames(Communicator& comm) {
  constexpr size_t kHostChars = 256;  // one all-gather of fixed-size blocks
  char name[kHostChars] = {};
  if (gethostname(name, kHostChars - 1) != 0) name[0] = '\0';
  std::vector<int64_t> mine(kHostChars, 0), all(kHostChars * static_cast<size_t>(comm.size()), 0);
  for (size_t i = 0; i < kHostChars && name[i]; ++i) mine[i] = static_cast<unsigned char>(name[i]);
  comm.allgather(mine, all);
  std::vector<std::string> hosts;
  for (int r = 0; r < comm.size(); ++r) {
    std::string h;
    for (size_t i = 0; i < kHostChars; ++i) {
      const int64_t c = all[static_cast<size_t>(r) * kHostChars + i];
      if (c == 0) break;
      h.push_back(static_cast<char>(c));
    }
    hosts.push_back(h);
  }
  return hosts;
}

int Communicator::ranks_on_node(int node) {
  const auto& nodes = node_of_rank();
  return static_cast<int>(std::count(nodes.begin(), nodes.end(), node));
}

}  // namespace moe
