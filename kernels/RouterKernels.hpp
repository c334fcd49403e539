#pragma once
// Router kernels: top-K selection over router logits and the gate weights
// (softmax over the chosen experts' logits, i.e. the renormalised softmax).

#include "kernels/KernelTypes.hpp"

namespace moe {

/// expert_ids(t*K + k) = index of the k-th largest logit of token t (ties to
/// the smaller expert id).
void topk_experts(const ConstUnmanagedMatrix& logits, int top_k, const ExpertIdVector& expert_ids);

/// gates(t*K + k) = exp(l_k) / sum_j exp(l_j) over the token's chosen experts.
void chosen_softmax(const ConstUnmanagedMatrix& logits, const ExpertIdVector& expert_ids, int top_k,
                    const Vector& gates);

/// The backward of chosen_softmax (docs/backward.md): for token t,
/// d_logits(t, e_tk) += gates_tk (d_gates_tk - sum_j gates_tj d_gates_tj),
/// zero for the experts not chosen (d_logits: B x N, overwritten).
void chosen_softmax_backward(const ConstVector& gates, const ConstVector& d_gates, const ExpertIdVector& expert_ids,
                             int top_k, const UnmanagedMatrix& d_logits);

}  // namespace moe
