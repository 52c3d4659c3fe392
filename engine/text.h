// String building for messages and notes. Debian's Abseil is built with its
// own absl::string_view (not std::string_view), so absl::StrCat does not
// take std::string_view; Cat does, and takes integers too.
#ifndef MEDSETTLE_ENGINE_TEXT_H_
#define MEDSETTLE_ENGINE_TEXT_H_

#include <concepts>
#include <string>
#include <string_view>

namespace medsettle::engine {

namespace text_internal {
inline void Append(std::string& out, std::string_view s) { out.append(s); }
inline void Append(std::string& out, const char* s) { out.append(s); }
inline void Append(std::string& out, const std::string& s) { out.append(s); }
inline void Append(std::string& out, char c) { out.push_back(c); }
template <std::integral T>
  requires(!std::same_as<T, char> && !std::same_as<T, bool>)
void Append(std::string& out, T v) {
  out.append(std::to_string(v));
}
}  // namespace text_internal

// Concatenates strings, string_views, chars and integers.
template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (text_internal::Append(out, args), ...);
  return out;
}

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_TEXT_H_
