#include "kernels/KernelSelfCheck.hpp"

#include <cstdint>
#include <string>

#include "kernels/KernelTypes.hpp"

namespace moe {

namespace {
constexpr int64_t kRows = 37, kCols = 5;

std::string mismatch(const char* kind, const char* what, double got, double want) {
  return std::string("Kokkos ") + kind + " kernel computed " + what + " = " + std::to_string(got) + ", expected " +
         std::to_string(want);
}
}  // namespace

std::string kernel_self_check() {
  IndexVector idx("moe::self_check_idx", kRows);
  Matrix a("moe::self_check_a", kRows, kCols);
  Kokkos::deep_copy(a, 0.5f);  // a view fill (Kokkos' own range kernel on a device)
  Kokkos::parallel_for(
      "moe::self_check_range", Kokkos::RangePolicy<ExecSpace>(0, kRows),
      KOKKOS_LAMBDA(const int64_t i) { idx(i) = kRows - 1 - i; });
  Kokkos::parallel_for(
      "moe::self_check_2d", RowMajorPolicy2D({0, 0}, {kRows, kCols}),
      KOKKOS_LAMBDA(const int64_t i, const int64_t j) { a(i, j) += static_cast<float>(10 * i + j); });
  using Team = Kokkos::TeamPolicy<ExecSpace>::member_type;
  Kokkos::parallel_for(
      "moe::self_check_team", Kokkos::TeamPolicy<ExecSpace>(static_cast<int>(kRows), Kokkos::AUTO),
      KOKKOS_LAMBDA(const Team& team) {
        const int64_t i = team.league_rank();
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, kCols), [&](const int64_t j) { a(i, j) *= 2.0f; });
      });
  const auto h_idx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), idx);
  const auto h_a = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), a);
  for (int64_t i = 0; i < kRows; ++i) {
    if (h_idx(i) != kRows - 1 - i)
      return mismatch("RangePolicy", ("element " + std::to_string(i)).c_str(), static_cast<double>(h_idx(i)),
                      static_cast<double>(kRows - 1 - i));
    for (int64_t j = 0; j < kCols; ++j) {
      // Each step is exact in float: fill 0.5, + (10 i + j), * 2.
      const float want = 2.0f * (0.5f + static_cast<float>(10 * i + j));
      if (h_a(i, j) != want)
        return mismatch("fill/2-D range/team",
                        ("element (" + std::to_string(i) + ", " + std::to_string(j) + ")").c_str(),
                        static_cast<double>(h_a(i, j)), static_cast<double>(want));
    }
  }
  return "";
}

}  // namespace moe
