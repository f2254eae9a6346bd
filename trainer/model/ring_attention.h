// Ring attention (Liu et al. 2023) over a sequence split across the C ranks of a context-parallel
// group, with zigzag load balancing: the sequence is cut into 2C chunks and ring position i holds
// chunks i and 2C-1-i, so every rank does the same causal work. Keys and values travel around the
// ring while each rank accumulates its queries' attention with the online softmax
// (model/blockwise_attention's span pieces); in backward they travel again, and the gradients of
// each rank's keys and values travel with them back to their owner. The transport is abstract
// (KeyValueRing): distributed/ implements it over the Communicator, tests with threads.
#pragma once

#include <torch/torch.h>

#include <array>
#include <functional>

namespace lctrain {

// A ring of C ranks. pass() sends a tensor to the next rank and receives the previous rank's, of
// the same shape and dtype; every rank of the ring calls it the same number of times in the same
// order.
class KeyValueRing {
 public:
  virtual ~KeyValueRing() = default;
  virtual int64_t size() const = 0;      // C
  virtual int64_t position() const = 0;  // this rank's place in the ring, 0 .. C-1
  // Starts the transfer; the returned function waits for it and returns the received tensor.
  virtual std::function<torch::Tensor()> pass(const torch::Tensor& outgoing) = 0;
};

// Which tokens of a sequence of `sequence_length` a ring position holds: chunks i and 2C-1-i.
class ZigzagLayout {
 public:
  // Throws an Error unless sequence_length is a multiple of 2 x ring_size.
  ZigzagLayout(int64_t ring_size, int64_t position, int64_t sequence_length);

  int64_t chunk_length() const { return chunk_length_; }
  int64_t local_length() const { return 2 * chunk_length_; }
  // The two chunk indices (0 .. 2C-1) held, in local order.
  std::array<int64_t, 2> chunks() const { return {position_, 2 * ring_size_ - 1 - position_}; }
  // The held tokens of `full` (dimension `dim` is the sequence), in local order.
  torch::Tensor take(const torch::Tensor& full, int64_t dim) const;

 private:
  int64_t ring_size_;
  int64_t position_;
  int64_t chunk_length_;
};

// Causal attention for this rank's zigzag share of the sequence. query [B, H, 2c, D]; key, value
// [B, Hkv, 2c, D] (H a multiple of Hkv: grouped-query attention without repeating heads on the
// wire), with RoPE already applied at the tokens' true positions. Returns [B, H, 2c, D] in the
// query's dtype; all arithmetic is fp32. Differentiable; `ring` must outlive the backward.
torch::Tensor ring_causal_attention(const torch::Tensor& query, const torch::Tensor& key,
                                    const torch::Tensor& value, KeyValueRing& ring,
                                    int64_t block = 512);

}  // namespace lctrain
