#include "train/yaml_precheck.h"

#include <cstddef>

#include "util/error.h"

namespace lctrain {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// The indentation of the line starting at `begin`, and whether the line is blank or a comment.
struct LineStart {
  size_t indent = 0;
  bool empty = true;
};

LineStart line_start(const std::string& text, size_t begin) {
  LineStart start;
  size_t at = begin;
  while (at < text.size() && is_blank(text[at])) ++at;
  start.indent = at - begin;
  start.empty = at == text.size() || text[at] == '\n' || text[at] == '#';
  return start;
}

// Whether the significant text of a line (comment removed, blanks trimmed) ends with a block
// scalar header: '|' or '>' with optional chomping and indentation indicators, after a blank.
bool ends_with_block_scalar_header(const std::string& significant) {
  size_t end = significant.size();
  while (end > 0 && (significant[end - 1] == '-' || significant[end - 1] == '+' ||
                     (significant[end - 1] >= '1' && significant[end - 1] <= '9'))) {
    --end;
  }
  if (end == 0 || (significant[end - 1] != '|' && significant[end - 1] != '>')) return false;
  return end == 1 || is_blank(significant[end - 2]);
}

}  // namespace

void refuse_stray_flow_entries(const std::string& text, const std::string& source) {
  int flow_depth = 0;
  char quote = 0;  // the open quoted scalar's quote character, or 0
  int line = 1;
  size_t line_begin = 0;
  // Block scalar content: lines indented deeper than the header's line (or blank).
  bool in_block_scalar = false;
  size_t block_parent_indent = 0;
  size_t line_indent = 0;
  std::string significant;       // this line's text outside comments, for the block scalar header
  char previous = 0;             // the last non-blank character on this line outside comments
  bool node_closed = false;      // `previous` closed a quoted scalar or a flow collection
  char word_first = 0;           // the first character of this blank-separated word
  char previous_word_first = 0;  // ... and of the word before it on this line

  for (size_t at = 0; at <= text.size(); ++at) {
    if (at == line_begin) {
      const LineStart start = line_start(text, at);
      if (in_block_scalar && (start.empty || start.indent > block_parent_indent)) {
        const size_t end = text.find('\n', at);
        if (end == std::string::npos) return;
        ++line;
        line_begin = end + 1;
        at = end;
        continue;
      }
      in_block_scalar = false;
      line_indent = start.indent;
      significant.clear();
      previous = 0;
      node_closed = false;
      word_first = previous_word_first = 0;
      // A document marker at column 0 starts the line over: "--- ," is a document starting
      // with ','.
      const std::string marker = text.substr(at, 3);
      if ((marker == "---" || marker == "...") &&
          (at + 3 == text.size() || is_blank(text[at + 3]) || text[at + 3] == '\n')) {
        at += 2;
        continue;
      }
    }
    if (at == text.size()) break;
    const char c = text[at];
    if (c == '\n') {
      if (quote == 0 && flow_depth == 0 && ends_with_block_scalar_header(significant)) {
        in_block_scalar = true;
        block_parent_indent = line_indent;
      }
      ++line;
      line_begin = at + 1;
      continue;
    }
    if (quote != 0) {
      if (quote == '"' && c == '\\') {
        ++at;  // an escaped character, perhaps a quote (an escaped newline cannot be skipped)
        if (at < text.size() && text[at] == '\n') --at;
      } else if (quote == '\'' && c == '\'' && at + 1 < text.size() && text[at + 1] == '\'') {
        ++at;  // '' inside single quotes
      } else if (c == quote) {
        quote = 0;
        previous = c;
        node_closed = true;
        significant += c;
      }
      continue;
    }
    if (c == '#' && (at == line_begin || is_blank(text[at - 1]))) {  // a comment: skip the line
      const size_t end = text.find('\n', at);
      at = (end == std::string::npos ? text.size() : end) - 1;
      continue;
    }
    significant += c;
    if (is_blank(c)) continue;
    const bool after_blank = at > line_begin && is_blank(text[at - 1]);
    if (after_blank || at == line_begin) {
      previous_word_first = word_first;
      word_first = c;
    }
    // A new token starts after an indicator, or after a node's anchor (&a) or tag (!t).
    const bool token_start =
        previous == 0 || previous == '[' || previous == '{' || previous == ',' ||
        (after_blank && (previous == ':' || previous == '-' || previous == '?' ||
                         previous_word_first == '&' || previous_word_first == '!'));
    if ((c == '"' || c == '\'') && token_start) {
      quote = c;
      continue;
    }
    if (c == ',' && flow_depth == 0 && (previous == 0 || node_closed)) {
      throw Error(
          "{}: YAML syntax error at line {}, column {}: ',' outside a [list] or {{mapping}} "
          "cannot {} (a comment that lost its '#'? quote the value if it is one)",
          source, line, at - line_begin + 1,
          previous == 0 ? "start a line" : "follow a quoted value or a closing bracket");
    }
    node_closed = false;
    if ((c == '[' || c == '{') && (token_start || flow_depth > 0)) {
      ++flow_depth;
    } else if ((c == ']' || c == '}') && flow_depth > 0) {
      --flow_depth;
      node_closed = flow_depth == 0;
    }
    previous = c;
  }
}

}  // namespace lctrain
