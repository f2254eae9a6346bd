// Headers precompiled once for every target (LibTorch's dominate build time).
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>
