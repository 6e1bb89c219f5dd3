// Container attribution from a cgroup v2 path (/proc/PID/cgroup, "0::" line),
// sans-IO. The runtimes name their cgroups like this (systemd and cgroupfs
// drivers):
//   docker      .../docker-<64 hex>.scope            .../docker/<64 hex>
//   containerd  .../cri-containerd-<64 hex>.scope     (CRI, systemd driver)
//   cri-o       .../crio-<64 hex>.scope
//   podman      .../libpod-<64 hex>.scope  (libpod-conmon-...: the monitor, not the container)
//   kubernetes  .../kubepods[-QOS]-pod<uid, '_' for '-'>.slice/...   .../kubepods/[QOS/]pod<uid>/<64 hex>
//   nspawn      machine.slice/systemd-nspawn@<name>.service   machine.slice/machine-<name>.scope
// The innermost container-like component wins (a container inside a pod).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cnasio::proc {

struct container_ref {
    std::string runtime; ///< "docker", "containerd", "cri-o", "podman", "nspawn", "kubernetes" (id unknown)
    std::string id;      ///< the container id (64 hex digits) or machine name; empty for a pod-only match
    std::string pod;     ///< the Kubernetes pod uid (with '-'), when the path names one
    friend bool operator==(const container_ref&, const container_ref&) = default;
};

namespace detail {
inline bool is_hex64(std::string_view s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}
// "<prefix><64 hex><suffix>" -> the hex, or empty.
inline std::string_view between(std::string_view part, std::string_view prefix, std::string_view suffix) {
    if (!part.starts_with(prefix) || !part.ends_with(suffix) || part.size() < prefix.size() + suffix.size()) return {};
    auto mid = part.substr(prefix.size(), part.size() - prefix.size() - suffix.size());
    return mid;
}
} // namespace detail

/// The container a cgroup path names, or nullopt.
inline std::optional<container_ref> container_of(std::string_view cgroup) {
    std::vector<std::string_view> parts;
    while (!cgroup.empty()) {
        auto slash = cgroup.find('/');
        auto part = cgroup.substr(0, slash);
        if (!part.empty()) parts.push_back(part);
        if (slash == std::string_view::npos) break;
        cgroup.remove_prefix(slash + 1);
    }
    std::optional<container_ref> found;
    std::string pod;
    std::string_view parent;
    for (auto part : parts) {
        // Kubernetes pod: systemd driver "kubepods-...-pod<uid>.slice", cgroupfs "pod<uid>".
        std::string_view uid;
        if (part.starts_with("kubepods") && part.ends_with(".slice")) {
            auto at = part.rfind("-pod");
            if (at != std::string_view::npos) uid = part.substr(at + 4, part.size() - at - 4 - 6);
        } else if (part.starts_with("pod") && part.size() > 3 &&
                   (parent == "kubepods" || parent == "burstable" || parent == "besteffort" ||
                    parent == "guaranteed")) {
            uid = part.substr(3);
        }
        if (!uid.empty()) {
            pod.assign(uid);
            for (auto& ch : pod)
                if (ch == '_') ch = '-';
        }
        struct rule {
            std::string_view prefix, suffix, runtime;
        };
        static constexpr rule rules[] = {{"docker-", ".scope", "docker"},
                                         {"cri-containerd-", ".scope", "containerd"},
                                         {"crio-", ".scope", "cri-o"},
                                         {"libpod-", ".scope", "podman"}};
        for (const auto& r : rules) {
            auto id = detail::between(part, r.prefix, r.suffix);
            if (detail::is_hex64(id)) found = container_ref{std::string(r.runtime), std::string(id), {}};
        }
        if (detail::is_hex64(part))
            found = container_ref{parent == "docker" ? "docker" : (pod.empty() ? "unknown" : "containerd"),
                                  std::string(part), {}};
        if (parent == "machine.slice") {
            if (auto n = detail::between(part, "systemd-nspawn@", ".service"); !n.empty())
                found = container_ref{"nspawn", std::string(n), {}};
            else if (auto m = detail::between(part, "machine-", ".scope"); !m.empty())
                found = container_ref{"nspawn", std::string(m), {}};
        }
        parent = part;
    }
    if (!pod.empty()) {
        if (!found) found = container_ref{"kubernetes", {}, {}};
        found->pod = pod;
    }
    return found;
}

} // namespace cnasio::proc
