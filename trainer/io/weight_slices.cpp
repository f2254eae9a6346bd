#include "io/weight_slices.h"

#include <map>

#include "io/checked_tensor_sources.h"
#include "model/llama_weights.h"
#include "util/error.h"

namespace lctrain::io {
namespace {

void check_range(const std::string& name, int64_t numel, int64_t begin, const torch::Tensor& out) {
  LCTRAIN_CHECK(begin >= 0 && out.numel() <= numel && begin <= numel - out.numel(),
                "internal: elements [{}, {}) of tensor '{}' ({} elements)", begin,
                begin + out.numel(), name, numel);
  LCTRAIN_CHECK(out.dim() == 1 && out.is_contiguous() && out.device().is_cpu(),
                "internal: slices are read into contiguous 1-D CPU tensors");
}

class FolderSlices : public WeightSlices {
 public:
  explicit FolderSlices(TensorSources sources) : sources_(std::move(sources)) {}
  ~FolderSlices() override { forget_whole(); }

  void read(const std::string& name, int64_t begin, torch::Tensor& out) override {
    const TensorSource& source = sources_.at(name);
    int64_t numel = 1;
    for (const int64_t size : source.shape) numel *= size;
    check_range(name, numel, begin, out);
    if (out.numel() == 0) return;
    if (source.read_range) {
      source.read_range(begin, out);
      return;
    }
    // Put together whole (it may alias the mapped file), kept for this tensor's other ranges.
    if (whole_name_ != name) {
      forget_whole();
      whole_ = source.read().reshape({-1});
      whole_name_ = name;
    }
    out.copy_(whole_.narrow(0, begin, out.numel()));
  }

 private:
  void forget_whole() {
    whole_ = torch::Tensor();
    const auto found = sources_.find(whole_name_);
    if (found != sources_.end() && found->second.release) found->second.release();
    whole_name_.clear();
  }

  TensorSources sources_;
  std::string whole_name_;
  torch::Tensor whole_;
};

class RandomSlices : public WeightSlices {
 public:
  RandomSlices(const LlamaConfig& config, uint64_t seed, double init_std)
      : generator_(at::detail::createCPUGenerator(seed)), init_std_(init_std) {
    LlamaWeights unused;
    for (const WeightSlot& slot : weight_slots(config, unused)) {
      slots_.emplace_back(slot.name, slot.shape);
    }
  }

  void read(const std::string& name, int64_t begin, torch::Tensor& out) override {
    // Every tensor is drawn whole, in order, from the one generator, as init_llama_weights does:
    // the values cannot depend on which slices a rank asks for.
    while (current_ != name) {
      LCTRAIN_CHECK(next_ < slots_.size(),
                    "internal: random weights asked for '{}' after '{}' (weight_slots order only)",
                    name, current_);
      const auto& [slot_name, shape] = slots_[next_++];
      tensor_ = torch::Tensor();
      tensor_ = init_llama_tensor(slot_name, shape, init_std_, generator_).reshape({-1});
      current_ = slot_name;
    }
    check_range(name, tensor_.numel(), begin, out);
    out.copy_(tensor_.narrow(0, begin, out.numel()));
  }

 private:
  torch::Generator generator_;
  double init_std_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> slots_;
  size_t next_ = 0;
  std::string current_;
  torch::Tensor tensor_;
};

class InMemorySlices : public WeightSlices {
 public:
  explicit InMemorySlices(std::vector<std::pair<std::string, torch::Tensor>> tensors)
      : tensors_(tensors.begin(), tensors.end()) {}

  void read(const std::string& name, int64_t begin, torch::Tensor& out) override {
    const auto found = tensors_.find(name);
    LCTRAIN_CHECK(found != tensors_.end(), "internal: no tensor '{}' among the weights", name);
    check_range(name, found->second.numel(), begin, out);
    out.copy_(found->second.reshape({-1}).narrow(0, begin, out.numel()));
  }

 private:
  std::map<std::string, torch::Tensor> tensors_;
};

}  // namespace

std::unique_ptr<WeightSlices> open_weight_slices(const std::filesystem::path& model_dir,
                                                 const LlamaConfig& config) {
  return std::make_unique<FolderSlices>(open_checked_sources(model_dir, config));
}

std::unique_ptr<WeightSlices> random_weight_slices(const LlamaConfig& config, uint64_t seed,
                                                   double init_std) {
  return std::make_unique<RandomSlices>(config, seed, init_std);
}

std::unique_ptr<WeightSlices> in_memory_weight_slices(
    std::vector<std::pair<std::string, torch::Tensor>> tensors) {
  return std::make_unique<InMemorySlices>(std::move(tensors));
}

}  // namespace lctrain::io
