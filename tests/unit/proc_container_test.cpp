// cnasio::proc::container_of: cgroup v2 paths of the common runtimes.
#include <cnasio/proc/container.hpp>

#include <doctest/doctest.h>

#include <string>

namespace proc = cnasio::proc;

namespace {
const std::string H = "3f4e5d6c7b8a99001122334455667788aabbccddeeff00112233445566778899";
}

TEST_CASE("container_of: runtimes, pods, nspawn, and paths that name none") {
    CHECK(proc::container_of("/system.slice/docker-" + H + ".scope") == proc::container_ref{"docker", H, ""});
    CHECK(proc::container_of("/docker/" + H) == proc::container_ref{"docker", H, ""});
    CHECK(proc::container_of("/machine.slice/libpod-" + H + ".scope/container") ==
          proc::container_ref{"podman", H, ""});
    CHECK(proc::container_of("/kubepods.slice/kubepods-burstable.slice/"
                             "kubepods-burstable-pod1a2b3c4d_0000_1111_2222_333344445555.slice/cri-containerd-" +
                             H + ".scope") ==
          proc::container_ref{"containerd", H, "1a2b3c4d-0000-1111-2222-333344445555"});
    CHECK(proc::container_of("/kubepods.slice/kubepods-pod1a2b_3c.slice/crio-" + H + ".scope") ==
          proc::container_ref{"cri-o", H, "1a2b-3c"});
    CHECK(proc::container_of("/kubepods/besteffort/pod1a2b-3c/" + H) == proc::container_ref{"containerd", H, "1a2b-3c"});
    CHECK(proc::container_of("/kubepods.slice/kubepods-pod1a2b_3c.slice") ==
          proc::container_ref{"kubernetes", "", "1a2b-3c"});
    CHECK(proc::container_of("/machine.slice/systemd-nspawn@web.service/payload") ==
          proc::container_ref{"nspawn", "web", ""});
    CHECK(proc::container_of("/machine.slice/machine-db.scope") == proc::container_ref{"nspawn", "db", ""});
    CHECK_FALSE(proc::container_of("/user.slice/user-0.slice/session-3.scope"));
    CHECK_FALSE(proc::container_of("/system.slice/docker.service"));
    CHECK_FALSE(proc::container_of("/system.slice/docker-" + H.substr(1) + ".scope")); // 63 hex digits
    CHECK_FALSE(proc::container_of("/"));
    CHECK_FALSE(proc::container_of(""));
}
