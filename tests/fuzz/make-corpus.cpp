// make-corpus: writes the seed corpus of the fuzz targets.
//
//     c++ -std=c++20 tests/fuzz/make-corpus.cpp -o make-corpus && ./make-corpus tests/fuzz/corpus
//
// Every datagram is written byte by byte here, not with cnasio's
// build_datagram, so that the seeds do not inherit a bug of the code they
// test. Each file starts with the prefix its target reads first (see the
// target's comment): the MSG_TRUNC flag, the mode byte, the settings, or the op script.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using bytes = std::vector<std::uint8_t>;

template <class T>
void put(bytes& b, T v) {
    const auto at = b.size();
    b.resize(at + sizeof v);
    std::memcpy(b.data() + at, &v, sizeof v);
}
void put_text(bytes& b, std::string_view s) { b.insert(b.end(), s.begin(), s.end()); }
void pad4(bytes& b) {
    while (b.size() % 4 != 0) b.push_back(0);
}
bytes cat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

constexpr std::uint16_t noop = 1, error = 2, done = 3, overrun = 4;

// nlmsghdr + cn_msg + data, nlmsg_len unrounded; `pad` rounds the bytes to 4.
bytes message(std::uint32_t idx, std::uint32_t val, std::uint32_t seq, std::uint32_t ack, const bytes& data,
              bool pad = true, std::uint16_t type = done, std::uint32_t nlmsg_pid = 0) {
    bytes b;
    put<std::uint32_t>(b, static_cast<std::uint32_t>(36 + data.size()));
    put<std::uint16_t>(b, type);
    put<std::uint16_t>(b, 0);
    put<std::uint32_t>(b, seq);
    put<std::uint32_t>(b, nlmsg_pid);
    put<std::uint32_t>(b, idx);
    put<std::uint32_t>(b, val);
    put<std::uint32_t>(b, seq);
    put<std::uint32_t>(b, ack);
    put<std::uint16_t>(b, static_cast<std::uint16_t>(data.size()));
    put<std::uint16_t>(b, 0);
    b.insert(b.end(), data.begin(), data.end());
    if (pad) pad4(b);
    return b;
}

// struct proc_event: what, cpu, timestamp_ns, then the event_data words.
bytes proc_event(std::uint32_t what, std::uint32_t cpu, std::initializer_list<std::uint32_t> words) {
    bytes b;
    put<std::uint32_t>(b, what);
    put<std::uint32_t>(b, cpu);
    put<std::uint64_t>(b, 123456789012345ull);
    for (auto w : words) put<std::uint32_t>(b, w);
    b.resize(40, 0); // the union is 24 bytes whatever the type
    return b;
}

bytes comm_event(const char* name) {
    bytes b;
    put<std::uint32_t>(b, 0x200);
    put<std::uint32_t>(b, 1);
    put<std::uint64_t>(b, 99);
    put<std::uint32_t>(b, 4321);
    put<std::uint32_t>(b, 4321);
    char comm[16] = {}; // the kernel's comm: NUL-padded, not always NUL-terminated
    std::memcpy(comm, name, std::min(std::strlen(name), sizeof comm));
    b.insert(b.end(), comm, comm + sizeof comm);
    return b;
}

// A netlink-only message (NOOP, ERROR, OVERRUN): header + body.
bytes netlink(std::uint16_t type, const bytes& body, std::uint32_t len_override = 0) {
    bytes b;
    put<std::uint32_t>(b, len_override ? len_override : static_cast<std::uint32_t>(16 + body.size()));
    put<std::uint16_t>(b, type);
    put<std::uint16_t>(b, 0);
    put<std::uint32_t>(b, 5);
    put<std::uint32_t>(b, 0);
    b.insert(b.end(), body.begin(), body.end());
    pad4(b);
    return b;
}

bytes nlmsg_error(std::int32_t err, bool echo) {
    bytes body;
    put<std::int32_t>(body, err);
    if (echo) { // the request's header, echoed
        put<std::uint32_t>(body, 40);
        put<std::uint16_t>(body, done);
        put<std::uint16_t>(body, 0);
        put<std::uint32_t>(body, 77);
        put<std::uint32_t>(body, 1234);
    }
    return netlink(error, body);
}

// A message whose headers lie about their lengths.
bytes lying(std::uint32_t nlmsg_len, std::uint16_t cn_len, std::size_t real_data) {
    bytes b = message(14, 1, 1, 0, bytes(real_data, 0x41));
    std::memcpy(b.data(), &nlmsg_len, sizeof nlmsg_len);
    std::memcpy(b.data() + 32, &cn_len, sizeof cn_len);
    return b;
}

struct writer {
    std::filesystem::path root;
    int count = 0;
    void operator()(const std::string& target, const std::string& name, const bytes& b) {
        const auto dir = root / target;
        std::filesystem::create_directories(dir);
        std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
        if (!f) {
            std::fprintf(stderr, "make-corpus: cannot write %s\n", (dir / name).c_str());
            std::exit(1);
        }
        ++count;
    }
};

bytes first(const bytes& b, std::size_t n) { return bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)); }

bytes with(std::uint8_t prefix, const bytes& b) { return cat({bytes{prefix}, b}); }

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make-corpus OUTDIR\n");
        return 2;
    }
    writer w{argv[1]};

    // Datagrams, as they arrive.
    const bytes fork_event = message(1, 1, 42, 0, proc_event(0x1, 1, {100, 100, 200, 200}));
    const bytes exit_event = message(1, 1, 43, 0, proc_event(0x80000000u, 0, {200, 200, 1792, 17, 100, 100}));
    const bytes proc_ack = message(1, 1, 7, 1001, proc_event(0x0, 0xffffffffu, {0}));
    const bytes proc_ack_einval = message(1, 1, 8, 1002, proc_event(0x0, 0, {22}));
    const bytes three = cat({message(14, 1, 1, 0, {'a'}), message(14, 1, 2, 0, {}),
                             message(14, 1, 3, 0, {'t', 'h', 'r', 'e', 'e'})});
    const bytes user_47 = message(14, 1, 9, 10, bytes{'1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '1'}, false);
    const bytes reply_to_1 = message(14, 1, 1, 2, bytes{'p', 'o', 'n', 'g'}, true, done, 1234);

    const std::vector<std::pair<std::string, bytes>> datagrams = {
        {"proc-fork-76", fork_event},
        {"proc-exit-76", exit_event},
        {"proc-ack-76", proc_ack},
        {"proc-ack-einval", proc_ack_einval},
        {"proc-comm", message(1, 1, 44, 0, comm_event("kworker/0:1"))},
        {"three-messages", three},
        {"user-unpadded-47", user_47},
        {"reply", reply_to_1},
        {"nlmsg-ack", nlmsg_error(0, true)},
        {"nlmsg-error-einval", nlmsg_error(-22, true)},
        {"nlmsg-error-intmin", nlmsg_error(INT32_MIN, false)},
        {"nlmsg-error-short", netlink(error, bytes{1, 2})},
        {"nlmsg-overrun", netlink(overrun, {})},
        {"noop-then-message", cat({netlink(noop, {}), message(14, 1, 5, 0, {'x'})})},
        {"len-below-header", lying(8, 1, 1)},
        {"len-beyond-datagram", lying(400, 1, 1)},
        {"cn-len-beyond-message", lying(40, 900, 4)},
        {"body-below-cn-msg", netlink(done, bytes(10, 0))},
        {"header-cut", first(fork_event, 12)},
        {"good-then-lying", cat({fork_event, lying(0xffffffffu, 0, 0)})},
        {"empty", {}},
    };

    // fuzz_framing: byte 0 bit 0 = MSG_TRUNC.
    for (const auto& [name, d] : datagrams) w("framing", name, with(0, d));
    w("framing", "truncated-on-boundary", with(1, fork_event));
    w("framing", "truncated-mid-message", with(1, first(fork_event, 50)));

    // fuzz_proc_event: mode 0 = seq, ack, payload; mode 1 = datagram (mode 3: truncated).
    const std::vector<std::pair<std::string, bytes>> payloads = {
        {"fork", proc_event(0x1, 1, {100, 100, 200, 200})},
        {"exec", proc_event(0x2, 1, {300, 300})},
        {"uid", proc_event(0x4, 0, {300, 300, 1000, 0})},
        {"gid", proc_event(0x40, 0, {300, 300, 1000, 0})},
        {"sid", proc_event(0x80, 0, {300, 300})},
        {"ptrace", proc_event(0x100, 0, {300, 300, 1, 1})},
        {"comm", comm_event("bash")},
        {"comm-no-nul", comm_event("0123456789abcdefXYZ")},
        {"coredump", proc_event(0x40000000u, 0, {300, 300, 1, 1})},
        {"exit", proc_event(0x80000000u, 0, {200, 200, 1792, 17, 100, 100})},
        {"exit-signaled-core", proc_event(0x80000000u, 0, {200, 200, 0x86, 17, 0, 0})},
        {"nonzero-exit", proc_event(0x20000000u, 0, {200, 200, 256, 17, 100, 100})},
        {"ack", proc_event(0x0, 0xffffffffu, {22})},
        {"unknown-what", proc_event(0x1000, 0, {1, 2, 3, 4, 5, 6})},
        {"short-exit", first(proc_event(0x80000000u, 0, {1}), 30)},
        {"header-only", first(proc_event(0x2, 0, {}), 16)},
    };
    for (const auto& [name, p] : payloads) {
        bytes b{0};
        put<std::uint32_t>(b, 42);  // seq
        put<std::uint32_t>(b, 0);   // ack
        w("proc_event", "payload-" + name, cat({b, p}));
    }
    int mask_number = 0;
    for (std::string_view list : {"fork,exec,exit", "all", " fork , comm ", "fork,,exit", "bogus", "nonzero_exit"}) {
        bytes b{0};
        put<std::uint32_t>(b, 0);
        put<std::uint32_t>(b, 0);
        put_text(b, list);
        w("proc_event", "mask-" + std::to_string(++mask_number), b);
    }
    for (const auto& [name, d] : datagrams)
        if (name.starts_with("proc")) w("proc_event", "datagram-" + name, with(1, d));
    w("proc_event", "datagram-burst", with(1, cat({fork_event, exit_event, proc_ack})));

    // fuzz_roundtrip: count, pad_last, then per message the header fields,
    // a u16 payload size and the payload bytes (see the target).
    {
        bytes b{2, 0};
        for (int i = 0; i < 2; ++i) {
            put<std::uint16_t>(b, done);
            put<std::uint16_t>(b, 0);
            put<std::uint32_t>(b, 7u + i);
            put<std::uint32_t>(b, 1234);
            put<std::uint32_t>(b, 14);
            put<std::uint32_t>(b, 1);
            put<std::uint32_t>(b, 7u + i);
            put<std::uint32_t>(b, 8);
            put<std::uint16_t>(b, 0);
            put<std::uint16_t>(b, static_cast<std::uint16_t>(i == 0 ? 11 : 40));
            b.resize(b.size() + (i == 0 ? 11 : 40), 0x5a);
        }
        w("roundtrip", "two-messages", b);
        bytes one{0, 1};
        put<std::uint16_t>(one, error); // becomes NLMSG_DONE
        one.resize(one.size() + 34, 0);
        put<std::uint16_t>(one, 16390); // above the limit: refused, then cut to 16384
        w("roundtrip", "oversized", one);
    }

    // fuzz_client_dispatch: settings, then a script of ops (op byte % 16), see the target.
    //   settings: u64 seed, timeout (1 + 8 * byte ms), flags (bit 0: byte limits may bind,
    //   then a u16 budget; the rest: our port id)
    //   0 request: how, key, timeout, shape   (how % 3: seq+ack, ack only, custom; 0x10 into; 0x60 too
    //     large; shape: & 3 == 3 seq only, >> 2 & 3 part rule (1 by flags, 2 by count), >> 4 & 3 count - 1,
    //     0x40 parts gathered)
    //   1 cancel: pick   2 clock: step (x16 ms; 0x80: no timer run)   9 send failed: pick
    //   3 subscribe: group, id pick, limit, flags (1 drop_newest, 2 then a byte limit / 8, 4 join fails)
    //   4 unsubscribe: pick   5 receive: pick, how (% 3: value, into, batch; >> 2: batch max)
    //   6 overrun   10 read error   11 cancel receive: pick, how   12 try receive: pick
    //   7 raw datagram: port pick, group, truncated?, u16 length, bytes
    //   8 built datagram: port pick, group, truncated?, count, per message: how (4: the request's id,
    //     8: not aimed at it, 0x10: another seq, 0x20: ack instead of ack + 1), request pick, ...,
    //     length (% 24; >> 5: cn_msg.flags, 0 more, 1 last, 2 not a part, 3 last)
    //   13 admit: port   14 a glue completion: ec   15 close (byte % 4 == 0), else 8
    {
        auto settings = [](std::uint64_t seed, std::uint8_t timeout, bool tight, std::uint16_t budget = 0) {
            bytes b;
            put<std::uint64_t>(b, seed);
            b.push_back(timeout);
            b.push_back(tight ? 1 : 0);
            if (tight) put<std::uint16_t>(b, budget);
            return b;
        };
        // port pick: 0 kernel, 1 admitted, 2 a forger, 3 the u32 that follows.
        auto raw = [](std::uint8_t port, std::uint8_t group, const bytes& d, std::uint32_t port_id = 0) {
            bytes b{7, port};
            if (port == 3) put<std::uint32_t>(b, port_id);
            b.push_back(group);
            b.push_back(1); // not truncated
            put<std::uint16_t>(b, static_cast<std::uint16_t>(d.size()));
            return cat({b, d});
        };
        // Subscriber on group 1 for proc, a kernel event, a forged one, an overrun.
        w("client_dispatch", "proc-subscriber",
          cat({settings(1, 100, false), bytes{3, 1, 1, 4, 0}, bytes{5, 0, 0}, raw(0, 1, fork_event),
               raw(2, 1, exit_event), bytes{6}, bytes{5, 0, 1}, raw(0, 1, three), bytes{12, 0}, bytes{12, 0}}));
        // A request answered by the kernel (seq, ack + 1), then a duplicate,
        // then a forger's copy claiming nlmsg_pid 0.
        w("client_dispatch", "request-reply",
          cat({settings(2, 100, false), bytes{0, 0, 0, 0, 0}, bytes{8, 0, 0, 1, 0, 0, 0, 4, 'p', 'o', 'n', 'g'},
               bytes{8, 0, 0, 1, 0, 0, 0, 0}, bytes{8, 2, 0, 1, 0, 0x40, 0, 0}}));
        // Ack-only, custom and into requests, the clock, a timeout, a cancel,
        // late replies, a failed send and a read error.
        w("client_dispatch", "timeouts-and-late",
          cat({settings(3, 100, false), bytes{0, 1, 0, 9, 0}, bytes{0, 2, 'k', 5, 0}, bytes{0, 0x10, 0, 3, 0},
               bytes{0, 0, 0, 0, 0}, bytes{2, 2}, bytes{1, 0}, bytes{8, 1, 0, 1, 1, 0, 0, 0, 0x10, 2, 5, 0},
               bytes{8, 0, 0, 1, 0, 0x08, 0, 1, 2, 2, 'k', 'k'}, bytes{9, 1}, bytes{10}, bytes{2, 0x7f}}));
        // Unicast to group-0 subscribers with an id filter, full queues, a batch receive.
        w("client_dispatch", "group0-queue",
          cat({settings(4, 100, false), bytes{3, 0, 2, 1, 1}, bytes{3, 0, 0, 2, 0}, raw(1, 0, reply_to_1),
               raw(1, 0, three), raw(3, 0, three, 12345), bytes{5, 1, 14}, bytes{11, 0, 0}, bytes{5, 0, 0},
               bytes{11, 0, 1}, bytes{4, 0}, bytes{4, 0x80}}));
        // A small client budget and byte limits shared by two subscribers.
        w("client_dispatch", "byte-budget",
          cat({settings(5, 100, true, 300), bytes{3, 1, 0, 5, 2, 20}, bytes{3, 1, 0, 5, 3, 40}, raw(0, 1, three),
               raw(0, 1, three), raw(0, 1, user_47), bytes{5, 0, 14}, bytes{12, 1}, raw(0, 1, three), bytes{5, 1, 0}}));
        // Multi-part answers, match::seq_only, parts gathered: by flags (more, last, then
        // a duplicate, and one for another id); by count, cut by a timeout, then a late part.
        w("client_dispatch", "multi-part",
          cat({settings(7, 100, false), bytes{0, 1, 0, 0, 0x47},
               bytes{8, 0, 0, 1, 3, 0x04, 0, 0x03, 'o', 'n', 'e', 0x24, 0, 0x23, 'e', 'n', 'd', 0x04, 0, 0x02, 'x', 'x',
                     0x00, 0, 0x21, 'y'},
               bytes{0, 1, 0, 5, 0x5b}, bytes{8, 0, 0, 1, 0, 0x04, 1, 0x01, 'a'}, bytes{2, 2},
               bytes{8, 0, 0, 1, 0, 0x04, 1, 0x01, 'b'}}));
        // close() with work pending, then everything fails with client_closed.
        w("client_dispatch", "close-then-ops",
          cat({settings(6, 100, false), bytes{0, 0, 0, 0, 0}, bytes{3, 2, 0, 3, 0}, bytes{5, 0, 0}, bytes{14, 1},
               bytes{15, 0}, bytes{0, 0, 0, 0, 0}, bytes{3, 2, 0, 3, 0}, bytes{5, 0, 0}, bytes{12, 0}, bytes{4, 0}}));
    }

    // fuzz_correlator: settings (memory limit byte % 9; compaction threshold 8 + byte / 9, 255:
    // the production 1,024), then ops (byte % 6), see the target:
    //   0 add: how (% 4: seq+ack, ack only, custom, seq only; >> 2: connector id), key, ack, deadline
    //   1 end: pick   2 classify: seq (0x80: counted back from the last), ack, first byte, connector id
    //   3 expire: time   4 burst: size   5 next deadline
    w("correlator", "reply-then-duplicate",
      bytes{2, 0, 0, 0, 5, 3, 2, 1, 6, 0, 2, 1, 6, 0, 2, 9, 6, 0, 0, 1, 0, 5, 3, 2, 7, 6, 0, 3, 3, 2, 2, 6, 0});
    w("correlator", "custom-and-expiry",
      bytes{1, 0, 2, 'k', 1, 4, 0, 1, 0, 2, 9, 2, 0, 1, 'k', 5, 3, 4, 3, 15, 2, 0, 2, 0});
    w("correlator", "ack-reused-in-small-memory",
      bytes{2, 0, 0, 0, 5, 1, 1, 0, 0, 0, 0, 5, 1, 1, 0, 0, 0, 0, 9, 1, 1, 0, 2, 2, 6, 0, 2, 1, 6, 0});
    w("correlator", "burst", bytes{8, 4, 200, 3, 15, 5, 4, 1});
    // seq_only: a reply needs seq and connector id, whatever the ack; then a
    // duplicate, a late one after expiry, and one for another id.
    w("correlator", "seq-only",
      bytes{2, 0, 3, 0, 5, 3, 0, 7, 0, 7, 9, 2, 1, 0, 0, 1, 2, 1, 9, 0, 0, 2, 1, 7, 0, 0, 3, 9, 2, 2, 1, 0, 1,
            2, 2, 1, 0, 0});
    // The production threshold (byte 255): a large burst reaches the rebuild at 1,024 stale records.
    w("correlator", "burst-production", bytes{255, 0, 0, 0, 1, 3, 4, 0xff, 5, 3, 15, 5});

    // fuzz_bpf_filter: a u32 event mask, then a datagram.
    auto masked = [](std::uint32_t mask, const bytes& d) {
        bytes b;
        put<std::uint32_t>(b, mask);
        return cat({b, d});
    };
    w("bpf_filter", "fork-mask-exec", masked(0x2, fork_event));
    w("bpf_filter", "exit-mask-nonzero", masked(0x20000000u, exit_event));
    w("bpf_filter", "exit-cut-mask-nonzero", masked(0x20000000u, first(exit_event, 50)));
    w("bpf_filter", "ack-mask-fork", masked(0x1, proc_ack));
    w("bpf_filter", "other-id-mask-fork", masked(0x1, three));
    w("bpf_filter", "short-mask-exit", masked(0x80000000u, first(fork_event, 39)));

    // fuzz_registry: the text of /proc/net/connector, as the kernel prints it and not.
    auto text = [](std::string_view s) { return bytes(s.begin(), s.end()); };
    w("registry", "host-6.18", text("Name            ID\ncn_proc         1:1\n"));
    w("registry", "with-module", text("Name            ID\ncn_proc         1:1\ncnasio_echo     14:1\n"));
    w("registry", "empty-list", text("Name            ID\n"));
    w("registry", "long-names", text("Name            ID\nexactly15_chars 0:0\n"
                                     "a_name_of_exactly_31_characters 4294967295:4294967295\nmy driver       20:7\n"));
    w("registry", "no-padding", text("Name            ID\ncn_proc 1:1\n"));
    w("registry", "same-id-twice", text("Name            ID\ncn_proc         1:1\nother           1:1\n"));
    w("registry", "cut", text("Name            ID\ncn_proc         1:"));

    // fuzz_w1_reply: a byte of settings (commands), then parts: ack kind (0 data, 1 status), length, payload.
    auto w1_msg = [](std::uint8_t type, std::uint8_t status, std::uint32_t master, std::uint8_t cmd, const bytes& data) {
        bytes b{type, status};
        put<std::uint16_t>(b, static_cast<std::uint16_t>(4 + data.size()));
        put<std::uint32_t>(b, master);
        put<std::uint32_t>(b, 0);
        b.push_back(cmd);
        b.push_back(0);
        put<std::uint16_t>(b, static_cast<std::uint16_t>(data.size()));
        return cat({b, data});
    };
    auto part = [](std::uint8_t kind, const bytes& payload) {
        return cat({bytes{kind, static_cast<std::uint8_t>(payload.size())}, payload});
    };
    const bytes two_roms{0x28, 1, 0, 0, 0, 0, 0, 0x29, 0x28, 2, 0, 0, 0, 0, 0, 0x70};
    w("w1_reply", "search", cat({bytes{1}, part(0, w1_msg(4, 0, 1, 2, two_roms)), part(1, w1_msg(4, 0, 1, 2, {}))}));
    w("w1_reply", "read-two-commands",
      cat({bytes{2}, part(1, w1_msg(5, 0, 0x28, 1, {})), part(0, w1_msg(5, 0, 0x28, 0, bytes(9, 0x55))),
           part(1, w1_msg(5, 0, 0x28, 0, {}))}));
    w("w1_reply", "enodev", cat({bytes{3}, part(1, w1_msg(5, 19, 0x28, 1, {}))}));
    w("w1_reply", "scratchpad-25C", bytes{0x90, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10, 0x33});
    w("w1_reply", "rom-name", text("28-00000a1b2c3d"));

    std::printf("make-corpus: %d files in %s\n", w.count, argv[1]);
    return 0;
}
