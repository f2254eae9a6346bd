// TrainConfig loading. One table (kFields) lists every key with its member, its range rule and a
// help line; YAML reading, overrides, validation, equality and to_yaml all walk that table, so a
// new key is one line and the four can never disagree about which keys exist.
#include "train/train_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <variant>

#include "train/yaml_precheck.h"
#include "util/error.h"

namespace lctrain {
namespace {

// Where a field lives inside a TrainConfig; the alternative also says how to parse its text.
using FieldRef = std::variant<int64_t*, uint64_t*, double*, bool*, std::string*>;
using FieldValue = std::variant<int64_t, uint64_t, double, bool, std::string>;
// Returns "" when the value is acceptable, else what it must be ("must be > 0").
using Rule = std::function<std::string(const FieldValue&)>;

struct Field {
  const char* section;
  const char* key;
  FieldRef (*ref)(TrainConfig&);
  Rule rule;         // empty: any value of the right type
  const char* help;  // written as a comment by to_yaml

  std::string name() const { return fmt::format("{}.{}", section, key); }
};

FieldValue read_value(const FieldRef& ref) {
  return std::visit([](auto* pointer) { return FieldValue(*pointer); }, ref);
}

std::string format_double(double value) {
  // fmt's shortest round-trip form; ".0" keeps integral values visibly floating point in YAML.
  std::string text = fmt::format("{}", value);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

std::string display(const FieldValue& value) {
  struct Visitor {
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(uint64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return format_double(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return "'" + v + "'"; }
  };
  return std::visit(Visitor{}, value);
}

double as_number(const FieldValue& value) {
  if (const auto* v = std::get_if<int64_t>(&value)) return static_cast<double>(*v);
  if (const auto* v = std::get_if<uint64_t>(&value)) return static_cast<double>(*v);
  if (const auto* v = std::get_if<double>(&value)) return *v;
  throw Error("internal: a numeric rule is attached to a non-numeric key");
}

// ---- Rules
// ---------------------------------------------------------------------------------------

Rule greater_than(double bound) {
  return [bound](const FieldValue& value) {
    return as_number(value) > bound ? std::string() : fmt::format("must be > {}", bound);
  };
}

Rule at_least(double bound) {
  return [bound](const FieldValue& value) {
    return as_number(value) >= bound ? std::string() : fmt::format("must be >= {}", bound);
  };
}

// An interval; the brackets in the message show which ends are included.
Rule within(double low, bool low_included, double high, bool high_included) {
  return [=](const FieldValue& value) {
    const double number = as_number(value);
    const bool above = low_included ? number >= low : number > low;
    const bool below = high_included ? number <= high : number < high;
    if (above && below) return std::string();
    return fmt::format("must be in {}{}, {}{}", low_included ? '[' : '(', low, high,
                       high_included ? ']' : ')');
  };
}

Rule not_empty(const char* what) {
  return [what](const FieldValue& value) {
    return std::get<std::string>(value).empty() ? fmt::format("is required ({})", what)
                                                : std::string();
  };
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The candidate a typo most likely meant, or "" when none is close enough to be a useful hint.
std::string closest(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;
  for (const std::string& candidate : candidates) {
    const size_t distance = edit_distance(name, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string join(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ", "));
}

Rule one_of(std::vector<std::string> choices) {
  return [choices = std::move(choices)](const FieldValue& value) {
    const std::string& text = std::get<std::string>(value);
    if (std::find(choices.begin(), choices.end(), text) != choices.end()) return std::string();
    const std::string hint = closest(text, choices);
    return fmt::format("must be one of {}{}", join(choices),
                       hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint));
  };
}

// ---- The table
// -----------------------------------------------------------------------------------

// The YAML names are the member names, so the two cannot drift apart.
// clang-format off
#define LCTRAIN_FIELD(section_, key_, rule_, help_)                                          \
  Field{#section_, #key_,                                                                    \
        [](TrainConfig& config) -> FieldRef { return &config.section_.key_; }, rule_, help_}
// clang-format on

const std::vector<Field>& fields() {
  static const std::vector<Field> kFields = {
      LCTRAIN_FIELD(model, path, nullptr, "Hugging Face folder to fine-tune; \"\" = random init"),
      LCTRAIN_FIELD(model, config, nullptr, "config.json for random init (when path is \"\")"),
      LCTRAIN_FIELD(model, init_seed, nullptr, "random init: seed"),
      LCTRAIN_FIELD(model, init_std, greater_than(0), "random init: weight std"),
      LCTRAIN_FIELD(context, target_length, greater_than(0),
                    "L': the window to extend to (required; not below the model's window)"),
      LCTRAIN_FIELD(context, original_length, at_least(0),
                    "L; 0 = the window the model was pre-trained at (its rope_scaling's "
                    "original window, else max_position_embeddings)"),
      LCTRAIN_FIELD(context, scaling, one_of({"linear", "dynamic", "yarn", "llama3", "none"}),
                    "RoPE scaling; linear = Position Interpolation"),
      LCTRAIN_FIELD(data, path, not_empty("a token shards folder or a token file"),
                    "token shards folder or token file"),
      LCTRAIN_FIELD(data, seed, nullptr, "data order seed"),
      LCTRAIN_FIELD(training, steps, greater_than(0), "optimizer steps"),
      LCTRAIN_FIELD(training, micro_batch_size, greater_than(0),
                    "sequences per rank per micro-step"),
      LCTRAIN_FIELD(training, gradient_accumulation, greater_than(0), "micro-steps per step"),
      LCTRAIN_FIELD(training, sequence_length, at_least(0), "0 = context.target_length"),
      LCTRAIN_FIELD(training, precision, one_of({"bf16", "fp16", "fp32"}), "compute dtype"),
      LCTRAIN_FIELD(training, reduce_dtype, one_of({"fp32", "bf16"}), "gradient all-reduce dtype"),
      LCTRAIN_FIELD(training, activation_checkpointing, nullptr, "recompute layers in backward"),
      LCTRAIN_FIELD(training, activation_checkpointing_every, greater_than(0),
                    "with checkpointing, recompute every Nth decoder layer (1: all)"),
      LCTRAIN_FIELD(training, context_parallel, greater_than(0),
                    "C: ranks that split each sequence between them (ring attention over 2C "
                    "zigzag chunks); must divide the world size, and 2C the sequence length"),
      LCTRAIN_FIELD(training, fused_projections, nullptr,
                    "q/k/v and gate/up as one GEMM each (views of the gathered weights; the "
                    "layout on disk is unchanged); false = one GEMM per projection"),
      LCTRAIN_FIELD(training, max_grad_norm, nullptr, "gradient clipping; <= 0 disables"),
      LCTRAIN_FIELD(training, max_nonfinite_steps, greater_than(0),
                    "steps in a row left unapplied (non-finite loss or gradient norm, loss "
                    "spike) that stop the run"),
      LCTRAIN_FIELD(training, loss_spike_factor, at_least(0),
                    "a step whose loss exceeds this x the median of recent steps, and every "
                    "one of them, is not applied; 0 = off"),
      LCTRAIN_FIELD(training, loss_scaling, one_of({"auto", "dynamic", "none"}),
                    "auto = dynamic for fp16, none otherwise"),
      LCTRAIN_FIELD(training, loss_scale, greater_than(0), "initial dynamic loss scale"),
      LCTRAIN_FIELD(training, loss_scale_window, greater_than(0),
                    "fp16: clean steps before the loss scale doubles"),
      LCTRAIN_FIELD(training, seed, nullptr, "training seed"),
      LCTRAIN_FIELD(training, device, one_of({"auto", "cpu", "cuda"}), "where ranks compute"),
      LCTRAIN_FIELD(training, peak_tflops, at_least(0), "MFU denominator; 0 = known GPUs' figure"),
      LCTRAIN_FIELD(optimizer, lr, greater_than(0), "AdamW peak learning rate"),
      LCTRAIN_FIELD(optimizer, beta1, within(0, true, 1, false), "AdamW beta1"),
      LCTRAIN_FIELD(optimizer, beta2, within(0, true, 1, false), "AdamW beta2"),
      LCTRAIN_FIELD(optimizer, eps, greater_than(0), "AdamW epsilon"),
      LCTRAIN_FIELD(optimizer, weight_decay, at_least(0), "AdamW decoupled weight decay"),
      LCTRAIN_FIELD(schedule, type, one_of({"constant", "cosine"}), "after warmup"),
      LCTRAIN_FIELD(schedule, warmup_steps, at_least(0), "linear warmup steps; 0 = none"),
      LCTRAIN_FIELD(schedule, warmup_start_factor, within(0, false, 1, true),
                    "warmup starts at this fraction of lr"),
      LCTRAIN_FIELD(schedule, min_lr_factor, within(0, true, 1, true), "cosine floor / lr"),
      LCTRAIN_FIELD(distributed, backend, one_of({"auto", "gloo", "nccl"}), "process group"),
      LCTRAIN_FIELD(distributed, timeout_seconds, greater_than(0), "collective timeout"),
      LCTRAIN_FIELD(output, dir, not_empty("the run's output folder"), "run folder"),
      LCTRAIN_FIELD(output, log_every, greater_than(0), "log every N steps"),
      LCTRAIN_FIELD(
          output, checkpoint_every, at_least(-1),
          "every N steps and at the end; 0 = at the end; -1 = never (signals still save)"),
      LCTRAIN_FIELD(output, resume, not_empty("auto, never or a checkpoint folder"),
                    "auto = newest good checkpoint in output.dir; never; or a checkpoint folder"),
      LCTRAIN_FIELD(output, keep_checkpoints, at_least(1), "newest N good checkpoints kept"),
      LCTRAIN_FIELD(output, overwrite, nullptr,
                    "with resume=never over a folder holding a run: move that run aside into "
                    "<dir>/previous-<time>/ and start over"),
      LCTRAIN_FIELD(output, allow_config_changes, nullptr,
                    "resume even when the model, window, RoPE, sequence length or global batch "
                    "differ from the checkpoint's run (warned)"),
      LCTRAIN_FIELD(output, save_final, nullptr, "write the final model in Hugging Face layout"),
  };
  return kFields;
}

#undef LCTRAIN_FIELD

std::vector<std::string> section_names() {
  std::vector<std::string> names;
  for (const Field& field : fields()) {
    if (names.empty() || names.back() != field.section) names.emplace_back(field.section);
  }
  return names;
}

std::vector<std::string> keys_of(const std::string& section) {
  std::vector<std::string> names;
  for (const Field& field : fields()) {
    if (field.section == section) names.emplace_back(field.key);
  }
  return names;
}

const Field* find_field(const std::string& section, const std::string& key) {
  for (const Field& field : fields()) {
    if (field.section == section && field.key == key) return &field;
  }
  return nullptr;
}

bool is_section(const std::string& name) {
  const std::vector<std::string> sections = section_names();
  return std::find(sections.begin(), sections.end(), name) != sections.end();
}

std::string unknown_section_message(const std::string& name) {
  const std::string hint = closest(name, section_names());
  if (!hint.empty()) return fmt::format("unknown section '{}' (did you mean '{}'?)", name, hint);
  // A key written at the top level instead of inside its section.
  for (const Field& field : fields()) {
    if (field.key == name) {
      return fmt::format("unknown section '{}' (did you mean '{}' inside '{}:'?)", name, field.key,
                         field.section);
    }
  }
  return fmt::format("unknown section '{}' (known sections: {})", name, join(section_names()));
}

std::string unknown_key_message(const std::string& section, const std::string& key) {
  const std::string prefix = fmt::format("unknown key '{}.{}'", section, key);
  const std::string hint = closest(key, keys_of(section));
  if (!hint.empty()) return fmt::format("{} (did you mean '{}'?)", prefix, hint);
  // A key put in the wrong section ("lr" under training).
  for (const Field& field : fields()) {
    if (field.key == key) return fmt::format("{} (did you mean '{}'?)", prefix, field.name());
  }
  return fmt::format("{} (known keys in '{}': {})", prefix, section, join(keys_of(section)));
}

// ---- Scalar parsing
// ------------------------------------------------------------------------------

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

template <typename Integer>
std::optional<Integer> parse_integer(std::string text) {
  if (!text.empty() && text[0] == '+') text.erase(0, 1);
  Integer value{};
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end) return std::nullopt;
  return value;
}

std::optional<double> parse_double(std::string text) {
  if (!text.empty() && text[0] == '+') text.erase(0, 1);
  double value = 0.0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

// Parses `node` into the type `ref` points at; returns "" on success, else the complaint.
std::string assign(const FieldRef& ref, const YAML::Node& node) {
  struct Visitor {
    const YAML::Node& node;
    std::string got() const { return describe_node(node); }
    bool scalar() const { return node.IsScalar(); }

    std::string operator()(int64_t* target) const {
      const auto value = scalar() ? parse_integer<int64_t>(node.Scalar()) : std::nullopt;
      if (!value) return "expected an integer, got " + got();
      *target = *value;
      return "";
    }
    std::string operator()(uint64_t* target) const {
      const auto value = scalar() ? parse_integer<uint64_t>(node.Scalar()) : std::nullopt;
      if (!value) return "expected a non-negative integer, got " + got();
      *target = *value;
      return "";
    }
    std::string operator()(double* target) const {
      const auto value = scalar() ? parse_double(node.Scalar()) : std::nullopt;
      if (!value) return "expected a finite number, got " + got();
      *target = *value;
      return "";
    }
    std::string operator()(bool* target) const {
      const std::string text = scalar() ? node.Scalar() : "";
      // Only YAML 1.2's spellings: "yes"/"on" mean true to some readers and a string to others.
      if (text == "true" || text == "True" || text == "TRUE") {
        *target = true;
      } else if (text == "false" || text == "False" || text == "FALSE") {
        *target = false;
      } else {
        return "expected true or false, got " + got();
      }
      return "";
    }
    std::string operator()(std::string* target) const {
      // An empty value ("path:") reads as null; for a string that is simply "".
      if (node.IsNull()) {
        target->clear();
        return "";
      }
      if (!scalar()) return "expected a string, got " + got();
      *target = node.Scalar();
      return "";
    }
  };
  return std::visit(Visitor{node}, ref);
}

// ---- Loading
// -------------------------------------------------------------------------------------

// Says where each key's value came from, for error messages.
class Locator {
 public:
  explicit Locator(std::string source) : source_(std::move(source)) {}

  void set_line(const std::string& name, const YAML::Mark& mark) {
    if (!mark.is_null()) lines_[name] = mark.line + 1;
  }
  void set_override(const std::string& name, const std::string& text) { overrides_[name] = text; }

  // "file.yaml:12", "file.yaml (override 'a.b=c')" or "file.yaml".
  std::string where(const std::string& name) const {
    if (const auto found = overrides_.find(name); found != overrides_.end()) {
      return fmt::format("{} (override '{}')", source_, found->second);
    }
    if (const auto found = lines_.find(name); found != lines_.end()) {
      return fmt::format("{}:{}", source_, found->second);
    }
    return source_;
  }
  std::string at(const YAML::Mark& mark) const {
    return mark.is_null() ? source_ : fmt::format("{}:{}", source_, mark.line + 1);
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::map<std::string, int> lines_;
  std::map<std::string, std::string> overrides_;
};

// Rejects unknown or repeated sections and keys, and sections that are not mappings. yaml-cpp
// keeps a repeated key as a second entry, so iterating the mapping sees both.
void check_structure(const YAML::Node& root, Locator& locator) {
  std::map<std::string, int> section_lines;
  for (const auto& section_entry : root) {
    const YAML::Node& name_node = section_entry.first;
    const YAML::Node& section = section_entry.second;
    LCTRAIN_CHECK(name_node.IsScalar(), "{}: section names must be plain words, got {}",
                  locator.at(name_node.Mark()), describe_node(name_node));
    const std::string name = name_node.Scalar();
    LCTRAIN_CHECK(is_section(name), "{}: {}", locator.at(name_node.Mark()),
                  unknown_section_message(name));
    const int line = name_node.Mark().line + 1;
    const auto [previous, inserted] = section_lines.emplace(name, line);
    LCTRAIN_CHECK(inserted, "{}: section '{}' appears twice (first at line {})",
                  locator.at(name_node.Mark()), name, previous->second);
    if (section.IsNull()) continue;
    LCTRAIN_CHECK(section.IsMap(), "{}: section '{}' must be a mapping of keys, got {}",
                  locator.at(section.Mark()), name, describe_node(section));
    std::map<std::string, int> key_lines;
    for (const auto& entry : section) {
      const YAML::Node& key_node = entry.first;
      LCTRAIN_CHECK(key_node.IsScalar(), "{}: keys in '{}' must be plain words, got {}",
                    locator.at(key_node.Mark()), name, describe_node(key_node));
      const std::string key = key_node.Scalar();
      LCTRAIN_CHECK(find_field(name, key) != nullptr, "{}: {}", locator.at(key_node.Mark()),
                    unknown_key_message(name, key));
      const auto [first, fresh] = key_lines.emplace(key, key_node.Mark().line + 1);
      LCTRAIN_CHECK(fresh, "{}: key '{}.{}' appears twice (first at line {})",
                    locator.at(key_node.Mark()), name, key, first->second);
      // The key's line: an empty value's own mark points past it, at the next line.
      locator.set_line(name + "." + key, key_node.Mark());
    }
  }
}

std::string trim(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const size_t last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

// Writes "section.key=value" into the tree, so the value goes through the same type checks as
// one written in the file.
void apply_override(YAML::Node& root, const std::string& text, Locator& locator) {
  const std::string context = fmt::format("{}: override '{}'", locator.source(), text);
  const size_t equals = text.find('=');
  LCTRAIN_CHECK(equals != std::string::npos,
                "{}: expected section.key=value (e.g. training.steps=10), found no '='", context);
  const std::string name = trim(text.substr(0, equals));
  const std::string value = trim(text.substr(equals + 1));
  const size_t dot = name.find('.');
  LCTRAIN_CHECK(dot != std::string::npos && dot > 0 && dot + 1 < name.size(),
                "{}: expected section.key=value (e.g. training.steps=10), got key '{}'", context,
                name);
  const std::string section = name.substr(0, dot);
  const std::string key = name.substr(dot + 1);
  LCTRAIN_CHECK(is_section(section), "{}: {}", context, unknown_section_message(section));
  LCTRAIN_CHECK(find_field(section, key) != nullptr, "{}: {}", context,
                unknown_key_message(section, key));
  if (!root[section].IsMap()) root[section] = YAML::Node(YAML::NodeType::Map);
  root[section][key] = value;
  locator.set_override(name, text);
}

// Per-key rules from the table, then the rules that involve two keys.
void validate_config(const TrainConfig& config, const Locator& locator) {
  TrainConfig scratch = config;  // FieldRef needs a mutable config; nothing is written
  for (const Field& field : fields()) {
    if (!field.rule) continue;
    const FieldValue value = read_value(field.ref(scratch));
    const std::string problem = field.rule(value);
    LCTRAIN_CHECK(problem.empty(), "{}: {} {}, got {}", locator.where(field.name()), field.name(),
                  problem, display(value));
  }
  LCTRAIN_CHECK(!config.model.path.empty() || !config.model.config.empty(),
                "{}: model.path is required (a Hugging Face folder to fine-tune), or set "
                "model.config to a config.json for a randomly initialized model",
                locator.where("model.path"));
  LCTRAIN_CHECK(config.training.sequence_length <= config.context.target_length,
                "{}: training.sequence_length ({}) exceeds context.target_length ({}): positions "
                "past the target window are not interpolated",
                locator.where("training.sequence_length"), config.training.sequence_length,
                config.context.target_length);
  LCTRAIN_CHECK(config.context.original_length == 0 ||
                    config.context.target_length >= config.context.original_length,
                "{}: context.target_length ({}) is shorter than context.original_length ({}); "
                "interpolation extends a window, it cannot shrink one",
                locator.where("context.target_length"), config.context.target_length,
                config.context.original_length);
  const int64_t chunks = 2 * config.training.context_parallel;
  LCTRAIN_CHECK(
      config.training.context_parallel == 1 || config.effective_sequence_length() % chunks == 0,
      "{}: training.context_parallel={} cuts each sequence into {} equal chunks, which "
      "{} tokens do not divide into (make the sequence length a multiple of {})",
      locator.where("training.context_parallel"), config.training.context_parallel, chunks,
      config.effective_sequence_length(), chunks);
}

TrainConfig parse(const std::string& text, const std::string& source,
                  const std::vector<std::string>& overrides) {
  Locator locator(source);
  refuse_stray_flow_entries(text, source);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::ParserException& error) {
    if (error.mark.is_null()) throw Error("{}: YAML syntax error: {}", source, error.msg);
    throw Error("{}: YAML syntax error at line {}, column {}: {}", source, error.mark.line + 1,
                error.mark.column + 1, error.msg);
  }
  LCTRAIN_CHECK(documents.size() <= 1, "{}: expected one YAML document, found {}", source,
                documents.size());
  YAML::Node root = documents.empty() ? YAML::Node(YAML::NodeType::Map) : documents.front();
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  LCTRAIN_CHECK(root.IsMap(), "{}: expected a mapping of sections ({}) at the top level, got {}",
                locator.at(root.Mark()), join(section_names()), describe_node(root));
  check_structure(root, locator);
  for (const std::string& override_text : overrides) apply_override(root, override_text, locator);

  TrainConfig config;
  const YAML::Node& tree = root;  // const lookups never insert missing keys
  for (const Field& field : fields()) {
    // A missing key yields an invalid node, whose type queries throw: ask IsDefined first.
    const YAML::Node section = tree[field.section];
    if (!section.IsDefined() || !section.IsMap()) continue;
    const YAML::Node value = section[field.key];
    if (!value.IsDefined()) continue;
    const std::string problem = assign(field.ref(config), value);
    LCTRAIN_CHECK(problem.empty(), "{}: {}: {}", locator.where(field.name()), field.name(),
                  problem);
  }
  validate_config(config, locator);
  return config;
}

// A YAML double-quoted scalar: reads back byte for byte, whatever the path holds.
std::string quote(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

TrainConfig TrainConfig::load(const std::filesystem::path& yaml_file,
                              const std::vector<std::string>& overrides) {
  std::ifstream stream(yaml_file, std::ios::binary);
  LCTRAIN_CHECK(stream.good(), "cannot open training config {}: {}", yaml_file.string(),
                std::strerror(errno));
  std::stringstream buffer;
  buffer << stream.rdbuf();
  return from_yaml_text(buffer.str(), yaml_file.string(), overrides);
}

TrainConfig TrainConfig::from_yaml_text(const std::string& text, const std::string& source,
                                        const std::vector<std::string>& overrides) {
  try {
    return parse(text, source, overrides);
  } catch (const YAML::Exception& error) {
    // parse() checks node types before using them; this net keeps any yaml-cpp corner we did
    // not foresee inside the one error type the CLI reports.
    throw Error("{}: invalid YAML: {}", source, error.what());
  }
}

std::string TrainConfig::to_yaml() const {
  TrainConfig scratch = *this;  // FieldRef needs a mutable config; nothing is written
  std::string out =
      "# lctrain effective training config: every key, defaults included.\n"
      "# Re-load it as a config to repeat this run.\n";
  std::string section;
  for (const Field& field : fields()) {
    if (field.section != section) {
      section = field.section;
      out += fmt::format("{}:\n", section);
    }
    const FieldValue value = read_value(field.ref(scratch));
    const std::string text = std::holds_alternative<std::string>(value)
                                 ? quote(std::get<std::string>(value))
                                 : display(value);
    out += fmt::format("  {}: {}  # {}\n", field.key, text, field.help);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> TrainConfig::values() const {
  TrainConfig scratch = *this;  // FieldRef needs a mutable config; nothing is written
  std::vector<std::pair<std::string, std::string>> result;
  for (const Field& field : fields()) {
    result.emplace_back(field.name(), display(read_value(field.ref(scratch))));
  }
  return result;
}

std::vector<std::pair<std::string, std::string>> TrainConfig::reference() {
  std::vector<std::pair<std::string, std::string>> result;
  for (const Field& field : fields()) result.emplace_back(field.name(), field.help);
  return result;
}

void TrainConfig::validate(const std::string& source) const {
  validate_config(*this, Locator(source));
}

std::vector<std::string> TrainConfig::keys() {
  std::vector<std::string> names;
  for (const Field& field : fields()) names.push_back(field.name());
  return names;
}

int64_t TrainConfig::effective_sequence_length() const {
  return training.sequence_length > 0 ? training.sequence_length : context.target_length;
}

int64_t TrainConfig::data_parallel_size(int64_t world_size) const {
  LCTRAIN_CHECK(world_size % training.context_parallel == 0,
                "training.context_parallel={} does not divide the {} rank(s) into equal groups "
                "(each sequence is split over that many ranks; use a divisor of the world size)",
                training.context_parallel, world_size);
  return world_size / training.context_parallel;
}

bool operator==(const TrainConfig& a, const TrainConfig& b) {
  TrainConfig left = a;
  TrainConfig right = b;
  for (const Field& field : fields()) {
    if (read_value(field.ref(left)) != read_value(field.ref(right))) return false;
  }
  return true;
}

}  // namespace lctrain
