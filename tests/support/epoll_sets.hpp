// How many epoll sets of this process hold a descriptor: read from the
// kernel's own account, /proc/self/fdinfo of every epoll descriptor, whose
// lines "tfd: <fd> events: ... ino:<hex inode> ..." name each watched file
// (fs/eventpoll.c, ep_show_fdinfo). A socket in any epoll set runs the epoll
// callback for every datagram queued to it; the client keeps its socket in a
// set only while it waits, and tests check that here. Raw syscalls, not cnasio.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <dirent.h>
#include <sys/stat.h>

namespace cnasio::test {

/// Epoll items in this process that watch the file open at `fd` (registered
/// under that descriptor number); -1 if `fd` or /proc cannot be read.
inline int epoll_sets_holding(int fd) {
    struct stat target{};
    if (::fstat(fd, &target) != 0) return -1;
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) return -1;
    int count = 0;
    while (const dirent* e = ::readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        const std::string info = std::string("/proc/self/fdinfo/") + e->d_name;
        std::FILE* f = std::fopen(info.c_str(), "r");
        if (!f) continue; // the directory's own descriptor, closed by now
        char line[256];
        while (std::fgets(line, sizeof line, f)) {
            if (std::strncmp(line, "tfd:", 4) != 0) continue;
            const int tfd = std::atoi(line + 4);
            const char* ino = std::strstr(line, "ino:");
            if (tfd == fd && ino && std::strtoull(ino + 4, nullptr, 16) == target.st_ino) ++count;
        }
        std::fclose(f);
    }
    ::closedir(dir);
    return count;
}

} // namespace cnasio::test
