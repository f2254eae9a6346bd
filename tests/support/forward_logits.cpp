#include "support/forward_logits.h"

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "support/test_support.h"

namespace lctrain::testing {

torch::Tensor forward_logits(const std::filesystem::path& model, const std::filesystem::path& ids,
                             const std::filesystem::path& out) {
  const CommandResult result = run_lctrain("forward --model " + quoted(model) + " --ids " +
                                           quoted(ids) + " --out " + quoted(out) + " --dtype f32");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  return io::SafetensorsFile::open(out).tensor("logits");
}

}  // namespace lctrain::testing
