#include "distributed/flat_param_unit.h"

#include <algorithm>

#include "util/error.h"
#include "util/page_mapped_tensor.h"
#include "util/profile_scopes.h"

namespace lctrain {

namespace {

std::vector<ParameterSpec> specs_of(
    const std::vector<std::pair<std::string, torch::Tensor>>& parameters) {
  std::vector<ParameterSpec> specs;
  for (const auto& [name, tensor] : parameters) specs.push_back({name, tensor.sizes().vec()});
  return specs;
}

}  // namespace

FlatParamUnit::FlatParamUnit(std::string name,
                             const std::vector<std::pair<std::string, torch::Tensor>>& parameters,
                             std::shared_ptr<Communicator> communicator)
    : FlatParamUnit(
          std::move(name), specs_of(parameters),
          [&parameters](const std::string& parameter, int64_t begin, torch::Tensor& out) {
            for (const auto& [candidate, tensor] : parameters) {
              if (candidate != parameter) continue;
              out.copy_(tensor.reshape({-1}).narrow(0, begin, out.numel()));
              return;
            }
          },
          std::move(communicator)) {}

FlatParamUnit::FlatParamUnit(std::string name, const std::vector<ParameterSpec>& parameters,
                             const ParameterRangeReader& read,
                             std::shared_ptr<Communicator> communicator)
    : name_(std::move(name)), communicator_(std::move(communicator)) {
  for (const ParameterSpec& parameter : parameters) {
    int64_t numel = 1;
    for (const int64_t size : parameter.shape) numel *= size;
    entries_.push_back({parameter.name, parameter.shape, numel_, numel});
    numel_ += numel;
  }
  const int64_t world = communicator_->world_size();
  padded_numel_ = (numel_ + world - 1) / world * world;
  if (padded_numel_ == 0) padded_numel_ = world;  // keep every shard non-empty

  // This rank's slice [begin, end) of the flat buffer, read parameter range by parameter range.
  // Padding is zero and stays zero (no view covers it, so its gradient is always zero).
  const int64_t begin = communicator_->rank() * shard_numel();
  const int64_t end = begin + shard_numel();
  auto shard = torch::zeros({shard_numel()}, torch::kFloat32);
  for (const FlatParamEntry& entry : entries_) {
    const int64_t from = std::max(begin, entry.offset);
    const int64_t to = std::min(end, entry.offset + entry.numel);
    if (from >= to) continue;
    torch::Tensor out = shard.narrow(0, from - begin, to - from);
    read(entry.name, from - entry.offset, out);
  }
  shard_ = shard.requires_grad_(true);
}

void FlatParamUnit::prefetch(torch::ScalarType dtype) {
  if (prefetched_ && prefetched_->dtype == dtype) return;
  torch::NoGradGuard no_grad;
  if (communicator_->world_size() == 1 && dtype == shard_.scalar_type()) {
    // One rank in the shard's own dtype: the full buffer is the shard (no copy per gather).
    // Nothing writes through it, and the optimizer updates the shard only after the backward
    // that uses it.
    prefetched_ = Prefetched{dtype, shard_.detach(), PendingCollective()};
    return;
  }
  auto full = empty_page_mapped(padded_numel_, shard_.options().dtype(dtype));
  const auto local = copy_page_mapped(shard_.detach(), dtype);
  const ProfileScope scope(kCommunicationScope);
  auto pending = communicator_->all_gather_async(full, local);
  prefetched_ = Prefetched{dtype, full, std::move(pending)};
}

torch::Tensor FlatParamUnit::gather(torch::ScalarType dtype) {
  prefetch(dtype);
  Prefetched ready = std::move(*prefetched_);
  prefetched_.reset();
  const ProfileScope scope(kCommunicationScope);
  ready.pending.wait();
  return ready.full;
}

namespace {

// The entries' views, then the spans'.
std::vector<torch::Tensor> narrowed_views(const FlatParamUnit& unit, const torch::Tensor& full) {
  std::vector<torch::Tensor> result;
  result.reserve(unit.entries().size() + unit.spans().size());
  for (const auto* list : {&unit.entries(), &unit.spans()}) {
    for (const FlatParamEntry& entry : *list) {
      result.push_back(full.narrow(0, entry.offset, entry.numel).view(entry.shape));
    }
  }
  return result;
}

// The views under autograd, with a backward that writes each parameter's gradient into one flat
// gradient. Autograd's own backward of a narrowed view materialises a zero tensor the size of the
// whole unit per parameter and sums them: a unit-sized fill and add per parameter (9 per decoder
// layer), which at short sequences costs as much as a good part of the matrix work.
class FlatViews : public torch::autograd::Function<FlatViews> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* context,
                                                const torch::Tensor& full, int64_t unit_address) {
    // Parameters without a gradient stay undefined rather than becoming zero tensors: the flat
    // gradient is zero-filled once.
    context->set_materialize_grads(false);
    context->saved_data["unit"] = unit_address;
    context->saved_data["numel"] = full.numel();
    const auto* unit = reinterpret_cast<const FlatParamUnit*>(unit_address);
    return narrowed_views(*unit, full);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list gradients) {
    const auto* unit = reinterpret_cast<const FlatParamUnit*>(context->saved_data["unit"].toInt());
    torch::Tensor flat;
    for (size_t index = 0; index < gradients.size(); ++index) {
      if (!gradients[index].defined()) continue;
      if (!flat.defined()) {
        flat = zeros_page_mapped(context->saved_data["numel"].toInt(), gradients[index].options());
      }
      const FlatParamEntry& entry = unit->view_entry(index);
      // Entries do not overlap one another; a span overlaps entries, which may have written.
      torch::Tensor range = flat.narrow(0, entry.offset, entry.numel);
      if (index < unit->entries().size()) {
        range.copy_(gradients[index].reshape({-1}));
      } else {
        range.add_(gradients[index].reshape({-1}));
      }
    }
    return {flat, torch::Tensor()};
  }
};

}  // namespace

std::vector<torch::Tensor> FlatParamUnit::views(const torch::Tensor& full) const {
  if (full.requires_grad() && torch::GradMode::is_enabled()) {
    return FlatViews::apply(full, reinterpret_cast<int64_t>(this));
  }
  return narrowed_views(*this, full);
}

bool FlatParamUnit::add_span(std::string name, size_t first, size_t count) {
  LCTRAIN_CHECK(count > 0 && first + count <= entries_.size(),
                "span {} covers entries {}..{} of a unit with {}", name, first, first + count,
                entries_.size());
  const std::vector<int64_t>& shape = entries_[first].shape;
  if (shape.empty()) return false;
  FlatParamEntry span{std::move(name), shape, entries_[first].offset, 0};
  span.shape[0] = 0;
  for (size_t index = first; index < first + count; ++index) {
    const std::vector<int64_t>& other = entries_[index].shape;
    if (other.empty() || other.size() != shape.size() ||
        !std::equal(other.begin() + 1, other.end(), shape.begin() + 1)) {
      return false;
    }
    span.shape[0] += other[0];
    span.numel += entries_[index].numel;
  }
  spans_.push_back(std::move(span));
  return true;
}

torch::Tensor FlatParamUnit::reduce_scatter_mean(const torch::Tensor& full_gradient,
                                                 torch::ScalarType reduce_dtype) {
  torch::NoGradGuard no_grad;
  const auto full = full_gradient.scalar_type() == reduce_dtype && full_gradient.is_contiguous()
                        ? full_gradient
                        : copy_page_mapped(full_gradient, reduce_dtype);
  auto shard = torch::empty({shard_numel()}, full.options());
  {
    const ProfileScope scope(kCommunicationScope);
    communicator_->reduce_scatter_sum(shard, full);
  }
  // Each rank's loss is a mean over its own batch: the global mean divides the sum by W.
  return shard.to(torch::kFloat32).div_(communicator_->world_size());
}

void FlatParamUnit::accumulate_gradient(const torch::Tensor& shard_gradient) {
  torch::NoGradGuard no_grad;
  if (!shard_.grad().defined()) {
    shard_.mutable_grad() = shard_gradient.clone();
  } else {
    shard_.mutable_grad().add_(shard_gradient);
  }
}

}  // namespace lctrain
