// A minimal JSON reader for the model file's config (mbfast/model/config.py ModelConfig.to_json): objects, arrays,
// strings, numbers, true/false/null. Not a general-purpose library: no \u surrogate pairs beyond the BMP.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace mbfast {

struct Json {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;
};

// Throws std::invalid_argument naming the byte offset of the first syntax error.
Json parse_json(const std::string& text);

}  // namespace mbfast
