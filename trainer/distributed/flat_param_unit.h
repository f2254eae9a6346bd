// FlatParamUnit: one FSDP unit (a decoder layer, the embeddings, or norm + lm_head). Its
// parameters live in one flat fp32 buffer padded to a multiple of the world size; this rank keeps
// only its contiguous 1/W slice (the master weights the optimizer updates). Gathering the full
// unit is one collective; module parameters are views into the gathered buffer.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace lctrain {

struct FlatParamEntry {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // in elements, into the flat buffer
  int64_t numel = 0;
};

// A parameter's name and shape: all a unit's layout depends on.
struct ParameterSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Fills `out` (fp32, contiguous, 1-D, CPU) with elements [begin, begin + out.numel()) of parameter
// `name` flattened: how a rank reads only its own slice of a unit.
using ParameterRangeReader =
    std::function<void(const std::string& name, int64_t begin, torch::Tensor& out)>;

class FlatParamUnit {
 public:
  // `parameters`: the unit's full tensors, identical on every rank (any dtype; kept as fp32).
  FlatParamUnit(std::string name,
                const std::vector<std::pair<std::string, torch::Tensor>>& parameters,
                std::shared_ptr<Communicator> communicator);
  // Reads only this rank's slice of the flat buffer: for each parameter it overlaps, the
  // overlapping element range, in parameter order. Peak memory: the shard.
  FlatParamUnit(std::string name, const std::vector<ParameterSpec>& parameters,
                const ParameterRangeReader& read, std::shared_ptr<Communicator> communicator);

  const std::string& name() const { return name_; }
  const std::vector<FlatParamEntry>& entries() const { return entries_; }
  // Declares one more view, named `name`, over entries [first, first + count): adjacent in the
  // flat buffer, so alike but for their first dimension they form one matrix without a copy
  // (q/k/v stacked: one GEMM instead of three). Returns false, declaring nothing, when their
  // other dimensions differ. The layout (and so every checkpoint) is unchanged.
  bool add_span(std::string name, size_t first, size_t count);
  const std::vector<FlatParamEntry>& spans() const { return spans_; }
  // What views()[index] shows: an entry, or past them a span.
  const FlatParamEntry& view_entry(size_t index) const {
    return index < entries_.size() ? entries_[index] : spans_.at(index - entries_.size());
  }
  int64_t numel() const { return numel_; }                // real elements
  int64_t padded_numel() const { return padded_numel_; }  // multiple of the world size
  int64_t shard_numel() const { return padded_numel_ / communicator_->world_size(); }

  // This rank's fp32 master slice (a leaf that requires grad: the optimizer's parameter).
  torch::Tensor& shard() { return shard_; }
  const torch::Tensor& shard() const { return shard_; }

  // Starts gathering the full flat buffer in `dtype` without waiting (prefetch).
  void prefetch(torch::ScalarType dtype);
  // The full flat buffer in `dtype`: the prefetched one if any, else gathered now.
  torch::Tensor gather(torch::ScalarType dtype);
  // Views of `full` shaped as the unit's parameters, in construction order, then its spans.
  std::vector<torch::Tensor> views(const torch::Tensor& full) const;
  // Sums a full-size gradient over ranks, keeps this rank's slice, averages by the world size.
  torch::Tensor reduce_scatter_mean(const torch::Tensor& full_gradient,
                                    torch::ScalarType reduce_dtype);
  // Adds a shard-sized gradient into shard().grad().
  void accumulate_gradient(const torch::Tensor& shard_gradient);

  Communicator& communicator() { return *communicator_; }

 private:
  std::string name_;
  std::vector<FlatParamEntry> entries_;
  std::vector<FlatParamEntry> spans_;
  int64_t numel_ = 0;
  int64_t padded_numel_ = 0;
  torch::Tensor shard_;
  std::shared_ptr<Communicator> communicator_;
  struct Prefetched {
    torch::ScalarType dtype;
    torch::Tensor full;
    PendingCollective pending;
  };
  std::optional<Prefetched> prefetched_;
};

}  // namespace lctrain
