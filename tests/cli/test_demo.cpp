// scripts/demo.sh, shortened (3 fine-tuning steps, 2 documents, 1 passkey trial), end to end on
// a copy of the bundled base model given as DEMO_BASE: every stage runs on that base, and the
// table, plot and exported model come out.
#include <gtest/gtest.h>

#include "support/test_support.h"
#include "util/json_fields.h"

namespace lctrain {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::quoted;

// A corpus in the Pile's format from this repository's own sources: long documents (the
// evaluation keeps those of at least 1024 tokens).
void write_corpus(const fs::path& dir) {
  const fs::path root = testing::source_dir();
  std::vector<fs::path> sources;
  for (const auto& entry : fs::recursive_directory_iterator(root / "trainer")) {
    if (entry.path().extension() == ".cpp") sources.push_back(entry.path());
  }
  std::sort(sources.begin(), sources.end());
  std::string train, test;
  for (size_t i = 0; i < sources.size(); ++i) {
    const std::string text = testing::read_text(sources[i]);
    if (text.size() < 6000) continue;
    const std::string line =
        nlohmann::json{{"text", text}, {"meta", {{"pile_set_name", "Github"}}}}.dump() + "\n";
    (i % 4 == 0 ? test : train) += line;
  }
  testing::write_text(dir / "train" / "00.jsonl", train);
  testing::write_text(dir / "test" / "00.jsonl", test);
}

TEST(Demo, ShortenedDemoRunsEveryStageAndWritesTheResults) {
  testing::ScratchDir scratch;
  write_corpus(scratch / "corpus");
  const fs::path out = scratch / "demo";
  const fs::path base = scratch / "base";
  fs::copy(testing::source_dir() / "data" / "tiny-llama", base);
  const auto result = testing::run_command(
      "cd " + quoted(testing::source_dir()) +
      " && LCTRAIN_BIN=" + quoted(testing::lctrain_binary()) +
      " DEMO_STEPS=3 DEMO_DOCS=2 DEMO_TRIALS=1 DEMO_CORPUS=" + quoted(scratch / "corpus") +
      " LCTRAIN_OUT=" + quoted(out) + " DEMO_BASE=" + quoted(base) + " scripts/demo.sh");
  ASSERT_EQ(result.exit_code, 0) << result.output;

  const std::string table = testing::read_text(out / "results.md");
  for (const char* row :
       {"| base (L=256), no scaling |", "| base + PI, no fine-tuning |",
        "| direct fine-tuning to 1024 |", "| PI fine-tuning to 1024 |", "effective window"}) {
    EXPECT_TRUE(contains(table, row)) << row << " not in:\n" << table;
  }
  for (const char* name : {"base", "base-pi", "direct", "pi"}) {
    const auto report = read_json_file(out / ("ppl-" + std::string(name) + ".json"));
    EXPECT_EQ(report.at("documents"), 2) << name;
    EXPECT_EQ(report.at("windows").size(), 3u) << name;
  }
  // Both fine-tunings ran their 3 steps and checkpointed; the PI one is exported with its window.
  for (const char* run : {"pi", "direct"}) {
    const fs::path manifest = out / run / "checkpoints" / "step-00000003" / "manifest.json";
    ASSERT_TRUE(fs::exists(manifest)) << run;
    EXPECT_EQ(read_json_file(manifest).at("model").at("base_model"), base.string()) << run;
  }
  const auto config = read_json_file(out / "tiny-llama-1024" / "config.json");
  EXPECT_EQ(config.at("max_position_embeddings"), 1024);
  EXPECT_EQ(config.at("rope_scaling").at("factor"), 4.0);
  EXPECT_TRUE(fs::exists(out / "tiny-llama-1024" / "tokenizer.model"));
  const auto direct = read_json_file(out / "direct" / "final" / "config.json");
  EXPECT_TRUE(direct.at("rope_scaling").is_null()) << "the control runs without interpolation";
  EXPECT_TRUE(fs::exists(out / "perplexity.png"));
  EXPECT_TRUE(contains(result.output, "demo: finished")) << result.output;
}

TEST(Demo, ASecondDemoOnTheSameFolderStopsBeforeTouchingIt) {
  testing::ScratchDir scratch;
  const fs::path out = scratch / "demo";
  testing::write_text(out / "results.md", "the first demo's table");
  // flock(1) holds the demo's lock while the second demo starts, as a running demo would.
  const auto result = testing::run_command("cd " + quoted(testing::source_dir()) + " && flock " +
                                           quoted(scratch / "demo.lock") +
                                           " env LCTRAIN_BIN=" + quoted(testing::lctrain_binary()) +
                                           " LCTRAIN_OUT=" + quoted(out) + " scripts/demo.sh");
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_TRUE(contains(result.output, "another demo is writing")) << result.output;
  EXPECT_EQ(testing::read_text(out / "results.md"), "the first demo's table");
}

TEST(Demo, AKnobThatIsNoPositiveNumberStopsItBeforeAnythingRuns) {
  testing::ScratchDir scratch;
  for (const char* knob : {"DEMO_STEPS=abc", "DEMO_DOCS=0", "DEMO_TRIALS=-3"}) {
    const auto result =
        testing::run_command("cd " + quoted(testing::source_dir()) + " && env " + knob +
                             " LCTRAIN_OUT=" + quoted(scratch / "demo") + " scripts/demo.sh");
    EXPECT_EQ(result.exit_code, 1) << knob << ": " << result.output;
    const std::string name = std::string(knob).substr(0, std::string(knob).find('='));
    EXPECT_TRUE(contains(result.output, name + " must be a positive whole number"))
        << result.output;
    EXPECT_FALSE(fs::exists(scratch / "demo")) << knob;
  }
}

}  // namespace
}  // namespace lctrain
