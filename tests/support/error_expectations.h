// Expectations on lctrain::Error messages, shared by the test binaries.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "util/error.h"

namespace lctrain::testing {

// The message of the lctrain::Error `body` throws, or "<no error>". Any other exception escapes
// and fails the test: bad input must end in our error type.
template <typename Body>
std::string error_message_of(Body&& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "<no error>";
}

inline void expect_contains(const std::string& message, std::initializer_list<std::string> parts) {
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

}  // namespace lctrain::testing
