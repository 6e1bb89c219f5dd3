// Fuzz target: connector::parse_registry, the strict parser of
// /proc/net/connector, on arbitrary text. Properties beyond "no sanitizer
// report":
//   - accepted text is exactly what the kernel would print for the result:
//     "Name            ID\n" then "%-15s %u:%u\n" per entry (so the parser
//     guesses nothing), names 1..31 bytes without '\n', ids unique;
//   - refused text gives an empty list, error::registry_malformed and a line
//     number within the text;
//   - diff_registry of the result against itself is empty, and against the
//     result minus its first entry reports exactly that entry as gone.
//
// Input: the file's text, as is.
#include <cnasio/connector/registry.hpp>

#include "fuzz_check.hpp"

#include <algorithm>
#include <string>
#include <string_view>

using namespace cnasio;

namespace {

std::string render(const std::vector<connector::registered_id>& ids) {
    std::string out = "Name            ID\n";
    for (const auto& r : ids) {
        char line[96];
        const int n = std::snprintf(line, sizeof line, "%-15s %u:%u\n", r.name.c_str(), r.id.idx, r.id.val);
        FUZZ_CHECK(n > 0 && static_cast<std::size_t>(n) < sizeof line);
        out.append(line, static_cast<std::size_t>(n));
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    error_code ec;
    std::size_t bad_line = 0;
    const auto ids = connector::parse_registry(text, ec, &bad_line);
    if (ec) {
        FUZZ_CHECK(ec == error::registry_malformed);
        FUZZ_CHECK(ids.empty());
        const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
        FUZZ_CHECK(bad_line <= lines + 1);
        return 0;
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto& r = ids[i];
        FUZZ_CHECK(!r.name.empty() && r.name.size() <= connector::max_registered_name);
        FUZZ_CHECK(r.name.find('\n') == std::string::npos && r.name.find('\0') == std::string::npos);
        for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(!(ids[j].id == r.id));
    }
    FUZZ_CHECK(render(ids) == text);
    FUZZ_CHECK(connector::diff_registry(ids, ids).empty());
    if (!ids.empty()) {
        const std::vector<connector::registered_id> rest(ids.begin() + 1, ids.end());
        const auto d = connector::diff_registry(ids, rest);
        FUZZ_CHECK(d.size() == 1 && d[0].which == ids[0] && !d[0].registered);
    }
    return 0;
}
