// Text that yaml-cpp 0.7 cannot be trusted with, refused before it reaches the parser.
#pragma once

#include <string>

namespace lctrain {

// Throws lctrain::Error naming `source`, the line and the column if `text` holds a ',' outside any
// flow collection ([...] or {...}) where no plain scalar can hold it: first on its line (outside
// a quoted or block scalar), or right after a quoted scalar or a closed flow collection. yaml-cpp
// 0.7 reads such a flow entry after a complete top-level node with undefined behaviour: it loops
// forever or allocates until the process dies (found by the config fuzz test: a recipe comment
// whose '#' was lost, e.g. "# ... at step 825\n, 4.88 at 950"). Valid YAML with a line that
// starts with ',' (the continuation of a plain scalar) is refused too: quoting the value fixes it.
void refuse_stray_flow_entries(const std::string& text, const std::string& source);

}  // namespace lctrain
