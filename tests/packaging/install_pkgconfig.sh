#!/bin/bash
# install_pkgconfig.sh SRCDIR WORKDIR - installs cnasio into a temporary prefix
# with `meson install`, checks what lands where, and builds a program against
# the installed copy with `pkg-config --cflags --libs cnasio` and nothing else.
set -euo pipefail
src=$(cd "$1" && pwd) work=$2
prefix=$work/prefix

rm -rf "$work"
mkdir -p "$work"
# Tests, examples and benchmarks are not installed; cnctl is (when it exists).
meson setup "$work/build" "$src" --prefix "$prefix" \
    -Dtests=disabled -Dexamples=disabled -Dbench=disabled > "$work/setup.log" 2>&1 ||
    { cat "$work/setup.log"; exit 1; }
meson install -C "$work/build" > "$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
for f in include/cnasio/cnasio.hpp include/cnasio/error.hpp include/cnasio/connector/socket.hpp \
         include/cnasio/netlink/protocol.hpp share/cnasio/kernel/cnasio_echo.c \
         share/cnasio/kernel/cnasio_echo_proto.h share/cnasio/kernel/Kbuild share/cnasio/kernel/Makefile; do
    test -f "$prefix/$f" || fail "$f not installed"
done
# Every header of the source tree is installed.
(cd "$src/include" && find cnasio -name '*.hpp' | sort) > "$work/headers.src"
(cd "$prefix/include" && find cnasio -name '*.hpp' | sort) > "$work/headers.installed"
diff -u "$work/headers.src" "$work/headers.installed" || fail "installed headers differ from include/"
if meson introspect "$work/build" --targets | grep '"name": "cnctl"' > /dev/null; then
    test -x "$prefix/bin/cnctl" || fail "cnctl not installed in bin/"
    "$prefix/bin/cnctl" --version || fail "installed cnctl --version"
fi

pc=$(find "$prefix" -name cnasio.pc)
test -n "$pc" || fail "no cnasio.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
cflags=$(pkg-config --cflags cnasio)
libs=$(pkg-config --libs cnasio)
echo "pkg-config --cflags cnasio: $cflags"
echo "pkg-config --libs cnasio:   $libs"
[[ " $cflags " == *" -I$prefix/include "* ]] || fail "Cflags lack -I$prefix/include"
[[ " $cflags " == *" -std=c++20 "* ]] || fail "Cflags lack -std=c++20"
test "$(pkg-config --modversion cnasio)" = "$(meson introspect "$work/build" --projectinfo |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')" || fail "version mismatch"

# A program that sees the installed headers only (built outside the source tree).
cat > "$work/prog.cpp" <<'CPP'
#include <cnasio/cnasio.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
int main() {
    namespace cn = cnasio::connector;
    std::array<std::byte, cn::datagram_size(4)> buf{};
    cnasio::error_code ec;
    const std::size_t n = cn::build_datagram(buf, {.id = cn::proc_id, .ack = 9}, cn::as_payload(std::uint32_t{1}), ec);
    cn::message_view m;
    if (ec || cn::parse_message({buf.data(), n}, m) || m.ack() != 9 || m.id() != cn::proc_id) return 1;
    const std::vector<std::byte> too_big(cn::max_payload + 1);
    cn::build_datagram(buf, {}, too_big, ec);
    boost::asio::io_context io;
    cn::socket s(io.get_executor());
    std::printf("installed cnasio works: %zu-byte LISTEN datagram, %s\n", n, ec.message().c_str());
    return ec == cnasio::error::payload_too_large ? 0 : 1;
}
CPP
( cd "$work" && c++ $cflags -Wall -Wextra -Wpedantic -Werror prog.cpp $libs -o prog )
out=$("$work/prog")
echo "$out"
test "$out" = "installed cnasio works: 40-byte LISTEN datagram, payload larger than CONNECTOR_MAX_MSG_SIZE (16384 bytes)" ||
    fail "unexpected program output"
# The headers came from the prefix, not from a copy elsewhere.
( cd "$work" && c++ $cflags -M prog.cpp ) | grep "$prefix/include/cnasio/connector/framing.hpp" > /dev/null ||
    fail "the program did not use the installed headers"
echo "PASS: meson install + pkg-config build"
