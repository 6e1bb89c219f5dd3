// Sets of process-event types: the 6.6+ struct proc_input event_type field,
// the classic BPF filter's input, and the parse result of "fork,exec,exit".
// Names come from the event-type table (event_types.hpp).
#pragma once

#include <cnasio/error.hpp>
#include <cnasio/proc/event_types.hpp>

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>

namespace cnasio::proc {

class event_mask {
public:
    constexpr event_mask() noexcept = default;
    constexpr event_mask(event_type t) noexcept // NOLINT: a type is a one-element set
        : bits_{static_cast<std::uint32_t>(t)} {}
    static constexpr event_mask from_bits(std::uint32_t bits) noexcept {
        event_mask m;
        m.bits_ = bits;
        return m;
    }
    static constexpr event_mask all() noexcept { return from_bits(event_type_all_bits); }

    constexpr std::uint32_t bits() const noexcept { return bits_; }
    constexpr bool empty() const noexcept { return bits_ == 0; }
    constexpr bool is_all() const noexcept { return bits_ == event_type_all_bits; }
    constexpr bool contains(event_type t) const noexcept {
        auto b = static_cast<std::uint32_t>(t);
        return b != 0 && (bits_ & b) == b;
    }

    // What the kernel makes of this mask (valid_event() in cn_proc.h and
    // cn_proc_mcast_ctl()): unknown bits are dropped, and an empty result
    // becomes PROC_EVENT_ALL.
    constexpr event_mask kernel_effective() const noexcept {
        std::uint32_t b = bits_ & event_type_all_bits;
        return from_bits(b == 0 ? event_type_all_bits : b);
    }

    friend constexpr event_mask operator|(event_mask a, event_mask b) noexcept {
        return from_bits(a.bits_ | b.bits_);
    }
    friend constexpr event_mask operator&(event_mask a, event_mask b) noexcept {
        return from_bits(a.bits_ & b.bits_);
    }
    constexpr event_mask& operator|=(event_mask o) noexcept {
        bits_ |= o.bits_;
        return *this;
    }
    friend constexpr bool operator==(event_mask, event_mask) noexcept = default;

private:
    std::uint32_t bits_ = 0;
};

constexpr event_mask operator|(event_type a, event_type b) noexcept { return event_mask{a} | event_mask{b}; }

// Parses a comma-separated list of type names ("fork,exec,exit"), or "all".
// Blanks around names are ignored. Errors (ec = EINVAL, generic category;
// empty mask returned): an unknown name, an empty list or an empty element
// ("fork,,exit"). `bad_name`, when given, receives the offending element so
// that a tool can name it in its message.
inline event_mask parse_event_mask(std::string_view list, error_code& ec,
                                   std::string_view* bad_name = nullptr) noexcept {
    ec.clear();
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
        return s;
    };
    auto fail = [&](std::string_view what) {
        ec = errno_code(EINVAL);
        if (bad_name) *bad_name = what;
        return event_mask{};
    };
    if (trim(list).empty()) return fail(list);
    event_mask mask;
    for (;;) {
        auto comma = list.find(',');
        auto item = trim(list.substr(0, comma));
        if (item == "all") {
            mask |= event_mask::all();
        } else if (auto t = event_type_from_string(item)) {
            mask |= *t;
        } else {
            return fail(item);
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return mask;
}

// "fork,exec,exit" (known bits, in table order), "all" for the full mask, ""
// for the empty one; unknown bits are shown as one "0x..." element.
inline std::string to_string(event_mask m) {
    if (m.is_all()) return "all";
    std::string out;
    std::uint32_t rest = m.bits();
    for (const auto& t : event_types) {
        if (t.filterable() && m.contains(t.type)) {
            if (!out.empty()) out += ',';
            out += t.name;
            rest &= ~t.what();
        }
    }
    if (rest != 0) {
        static constexpr char hex[] = "0123456789abcdef";
        if (!out.empty()) out += ',';
        out += "0x";
        bool started = false;
        for (int shift = 28; shift >= 0; shift -= 4) {
            unsigned digit = (rest >> shift) & 0xfu;
            if (digit != 0 || started || shift == 0) {
                out += hex[digit];
                started = true;
            }
        }
    }
    return out;
}

} // namespace cnasio::proc
