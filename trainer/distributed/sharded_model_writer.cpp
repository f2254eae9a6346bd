#include "distributed/sharded_model_writer.h"

#include <optional>
#include <string>

#include "io/model_folder_swap.h"
#include "io/streaming_model_writer.h"
#include "util/error.h"

namespace lctrain {
namespace {

using TensorSink = std::function<void(const std::string& name, const torch::Tensor& tensor)>;

// Gathers the units from `next` on, handing each tensor to `sink` when there is one. Every rank
// must gather every unit exactly once, whatever happened to rank 0's writing.
void gather_units(ShardedLlama& model, torch::ScalarType dtype, size_t& next,
                  const TensorSink& sink) {
  const auto& units = model.units();
  while (next < units.size()) {
    FlatParamUnit& unit = *units[next++];
    // Gathered straight in the output dtype: converting each element before or after the gather
    // gives the same bits, and the gathered unit is half the size for bf16.
    const torch::Tensor full = unit.gather(dtype);
    const std::vector<torch::Tensor> views = unit.views(full);
    if (!sink) continue;
    for (size_t index = 0; index < unit.entries().size(); ++index) {  // the spans after them
      sink(unit.entries()[index].name, views[index]);
    }
  }
}

}  // namespace

void save_sharded_model(
    ShardedLlama& model, const std::filesystem::path& model_dir, const LlamaConfig& config,
    torch::ScalarType dtype, uint64_t max_shard_bytes,
    const std::function<void(const std::filesystem::path& folder)>& write_extras) {
  torch::NoGradGuard no_grad;
  Communicator& communicator = model.units().front()->communicator();
  size_t next_unit = 0;
  std::optional<std::string> failure;
  if (communicator.rank() == 0) {
    try {
      io::write_model_folder(model_dir, [&](const std::filesystem::path& staging) {
        std::optional<io::StreamingModelWriter> writer;
        std::optional<std::string> write_failure;
        // A failed write must not stop the gathers the other ranks are waiting in.
        const auto attempt = [&](auto&& body) {
          if (write_failure) return;
          try {
            body();
          } catch (const std::exception& error) {  // ours, filesystem errors, a full disk
            write_failure = error.what();
          }
        };
        attempt([&] { writer.emplace(staging, config, dtype, max_shard_bytes); });
        gather_units(model, dtype, next_unit,
                     [&](const std::string& name, const torch::Tensor& tensor) {
                       attempt([&] { writer->write(name, tensor); });
                     });
        attempt([&] { writer->finish(); });
        if (!write_failure && write_extras) attempt([&] { write_extras(staging); });
        if (write_failure) throw Error("{}", *write_failure);  // the staging folder is dropped
      });
    } catch (const std::exception& error) {
      failure = error.what();
    }
  }
  gather_units(model, dtype, next_unit, nullptr);  // rank 0 refused before or failed during
  const bool failed = communicator.sum_over_ranks(failure ? 1.0 : 0.0) > 0.0;
  if (failure) throw Error("{}", *failure);
  LCTRAIN_CHECK(!failed, "rank 0 failed to write {} (see its error)", model_dir.string());
}

}  // namespace lctrain
