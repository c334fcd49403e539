// Prints eplb_place's placements for eplb_reference.py to compare with its own
// statement of the published algorithm. One case per input line:
//   P R G NG w_0 w_1 ... w_{N-1}        (NG = 0: no expert groups)
// one output line per case:
//   c_0 ... c_{N-1} | e ... e           (replica counts | experts of rank 0's slots, rank 1's, ...)
// or "error: <reason>".
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "policies/EplbPlacement.hpp"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    moe::EplbConfig cfg;
    if (!(in >> cfg.num_ranks >> cfg.redundant >> cfg.nodes >> cfg.expert_groups)) continue;
    std::vector<double> w;
    for (double x; in >> x;) w.push_back(x);
    try {
      const moe::EplbPlacement p = moe::eplb_place(w, cfg);
      for (const int c : p.replica_count) std::cout << c << ' ';
      std::cout << '|';
      for (const auto& slots : p.replicas_of_rank)
        for (const int e : slots) std::cout << ' ' << e;
      std::cout << '\n';
    } catch (const std::exception& ex) {
      std::cout << "error: " << ex.what() << '\n';
    }
  }
  return 0;
}
