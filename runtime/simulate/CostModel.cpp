#include "runtime/simulate/CostModel.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace moe {

int64_t dtype_bytes(const std::string& dtype) { return dtype == "fp32" ? 4 : 2; }

int64_t expert_bytes_at(const ModelShape& shape, int64_t element_bytes) {
  return shape.expert_weight_bytes() / static_cast<int64_t>(sizeof(float)) * element_bytes;
}

CostModel::CostModel(const Machine& m, const ModelShape& shape, const std::string& dtype, int num_ranks,
                     int ranks_per_node)
    : machine_(m), shape_(shape), dtype_(dtype), num_ranks_(num_ranks), ranks_per_node_(std::max(1, ranks_per_node)) {
  const auto peak = m.peak_flops.find(dtype);
  if (peak == m.peak_flops.end())
    throw std::invalid_argument("--dtype " + dtype + ": machine '" + m.name + "' has no peak_flops." + dtype +
                                " (use its default_dtype " + m.default_dtype + ")");
  peak_ = peak->second;
  cal_ = m.calibrated(shape, dtype);
  element_bytes_ = dtype_bytes(dtype);
  row_bytes_ = int64_t{shape.hidden} * element_bytes_;
  expert_bytes_ = expert_bytes_at(shape, element_bytes_);
  const Calibration* c = m.calibration ? &*m.calibration : nullptr;
  copy_bw_ = c && c->copy_bandwidth > 0.0 ? c->copy_bandwidth : m.memory_bandwidth / 2.0;
  touch_bw_ = c ? c->first_touch_bandwidth : 0.0;
  units_ = c ? c->compute_units : 0.0;
  intra_ = c && c->alltoall ? *c->alltoall : m.intra_node;
  p2p_intra_ = c && c->p2p ? *c->p2p : m.intra_node;
  inter_ = m.inter_node;
}

std::string CostModel::compute_source() const {
  if (!cal_) return "roofline";
  const Calibration& c = *machine_.calibration;
  return "calibrated (" + c.host + ", " + c.date + ", " + std::to_string(c.ranks) + " rank(s))";
}

double CostModel::block_s(int64_t rows) const {
  if (rows <= 0) return 0.0;
  if (cal_) {
    const auto& R = cal_->rows;
    const auto& S = cal_->seconds;
    if (rows <= R.front()) return S.front();
    if (rows >= R.back()) return S.back() * static_cast<double>(rows) / static_cast<double>(R.back());
    const size_t i =
        static_cast<size_t>(std::upper_bound(R.begin(), R.end(), rows) - R.begin());  // R[i-1] <= rows < R[i]
    const double f = static_cast<double>(rows - R[i - 1]) / static_cast<double>(R[i] - R[i - 1]);
    return S[i - 1] + f * (S[i] - S[i - 1]);
  }
  const double D = shape_.hidden, H = shape_.ffn, n = static_cast<double>(rows);
  const double flops = 6.0 * D * H * n;
  const double bytes =
      static_cast<double>(expert_bytes_) + n * (2.0 * D + 6.0 * H) * static_cast<double>(element_bytes_);
  return std::max(flops / peak_, bytes / machine_.memory_bandwidth) + 3.0 * machine_.launch_overhead_s;
}

double CostModel::route_s(int64_t tokens) const {
  if (tokens <= 0) return 0.0;
  const double T = static_cast<double>(tokens);
  if (cal_) return cal_->route_s_per_token * T;
  const double D = shape_.hidden, N = shape_.num_experts;
  return std::max(2.0 * T * D * N / peak_,
                  T * (D + N) * static_cast<double>(element_bytes_) / machine_.memory_bandwidth) +
         2.0 * machine_.launch_overhead_s;
}

double CostModel::layout_s(int64_t slots, int64_t kept) const {
  if (!cal_) return machine_.layout_s_per_slot * static_cast<double>(std::max<int64_t>(0, slots));
  return cal_->layout_s_per_slot * static_cast<double>(std::max<int64_t>(0, slots)) +
         cal_->layout_s_per_kept_slot * static_cast<double>(std::max<int64_t>(0, kept));
}

double CostModel::copy_s(int64_t bytes) const {
  if (bytes <= 0) return 0.0;
  return static_cast<double>(bytes) / copy_bw_ + machine_.launch_overhead_s;
}

double CostModel::permute_s(int64_t slots) const {
  if (slots <= 0) return 0.0;
  if (cal_ && cal_->permute_s_per_slot > 0.0) return cal_->permute_s_per_slot * static_cast<double>(slots);
  return copy_s(slots * row_bytes_);
}

double CostModel::combine_s(int64_t slots, int64_t kept) const {
  if (slots <= 0) return 0.0;
  if (cal_ && cal_->combine_s_per_slot + cal_->combine_s_per_kept_slot > 0.0)
    return cal_->combine_s_per_slot * static_cast<double>(slots) +
           cal_->combine_s_per_kept_slot * static_cast<double>(std::max<int64_t>(0, kept));
  return copy_s(slots * row_bytes_);
}

double CostModel::first_touch_s(int64_t bytes) const {
  if (bytes <= 0 || touch_bw_ <= 0.0) return 0.0;
  return static_cast<double>(bytes) / touch_bw_;
}

namespace {
double two_links(const LinkModel& intra, const LinkModel& inter, int64_t a, int64_t b, bool multi_node) {
  const double t = std::max(static_cast<double>(a) / intra.bandwidth, static_cast<double>(b) / inter.bandwidth);
  return (multi_node ? std::max(intra.latency_s, inter.latency_s) : intra.latency_s) + t;
}
}  // namespace

double CostModel::alltoall_s(int64_t intra, int64_t inter) const {
  if (num_ranks_ <= 1) return 0.0;
  return two_links(intra_, inter_, intra, inter, num_ranks_ > ranks_per_node_);
}

double CostModel::p2p_s(int64_t intra, int64_t inter) const {
  if (intra <= 0 && inter <= 0) return 0.0;
  return two_links(p2p_intra_, inter_, intra, inter, inter > 0);
}

double CostModel::allgather_s(int64_t bytes) const {
  if (num_ranks_ <= 1) return 0.0;
  const bool multi = num_ranks_ > ranks_per_node_;
  const LinkModel& l = multi ? inter_ : intra_;
  const double hops = std::ceil(std::log2(static_cast<double>(num_ranks_)));
  return hops * l.latency_s + static_cast<double>(bytes) / l.bandwidth;
}

}  // namespace moe
