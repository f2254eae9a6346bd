// A test fixture holding PyTorch-format copies of the tiny-llama-parity fixture (Meta `.pth` with
// two model-parallel shards, Hugging Face `.bin`, single and sharded), written once per suite by
// tests/io/make_torch_checkpoints.py under Debian's python3-torch: importing torch takes seconds.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "support/test_support.h"

namespace lctrain::testing {

class TorchCheckpointsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = std::make_unique<ScratchDir>();
    const auto script = source_dir() / "tests" / "io" / "make_torch_checkpoints.py";
    const auto result =
        run_command("/usr/bin/python3 " + quoted(script) + " " +
                    quoted(fixture_dir("tiny-llama-parity")) + " " + quoted(scratch_->path()));
    made_ = result.exit_code == 0;
    if (!made_) std::cerr << "make_torch_checkpoints.py failed:\n" << result.output << std::endl;
  }
  static void TearDownTestSuite() { scratch_.reset(); }
  void SetUp() override {
    ASSERT_TRUE(made_) << "needs Debian's python3-torch for /usr/bin/python3 (scripts/setup.sh)";
  }

  // One of the written checkpoints: "meta", "bin", "bin-sharded", ... (see the script).
  static std::filesystem::path dir(const std::string& name) { return scratch() / name; }
  // The suite's scratch folder, where the checkpoints are: tests may write beside them.
  static std::filesystem::path scratch() { return scratch_->path(); }

 private:
  static inline std::unique_ptr<ScratchDir> scratch_;
  static inline bool made_ = false;
};

}  // namespace lctrain::testing
