// The configuration reference (docs/configuration.md), generated from the training config's
// field table so that the documentation of every key and default cannot drift from the loader.
#pragma once

#include <string>

namespace lctrain {

// Markdown: one table per section with each key, its default and what it means.
std::string configuration_reference_markdown();

}  // namespace lctrain
