// What the guest programs do to the modules under test: run insmod/rmmod
// through the shell, and read and write a loaded module's parameters in
// /sys/module/NAME/parameters/. A failure is printed and counted (check.hpp).
#pragma once

#include "check.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace guest {

/// Runs `cmd` with /bin/sh; true on exit status 0, else prints the command and its status.
inline bool shell(const std::string& cmd)
{
    const int rc = std::system(cmd.c_str());
    if (rc != 0)
        std::printf("  '%s' failed: status %d\n", cmd.c_str(), rc);
    return rc == 0;
}

/// The first line of a text file; empty if it cannot be read.
inline std::string first_line(const std::string& path)
{
    std::ifstream f(path);
    std::string s;
    std::getline(f, s);
    return s;
}

/// One module's parameters.
struct module_params {
    std::string module; ///< as in /sys/module (dashes become underscores there)

    std::string path(const char* name) const { return "/sys/module/" + module + "/parameters/" + name; }

    /// Writes `value`; a failed write is a CHECK failure.
    void write(const char* name, const std::string& value) const
    {
        std::ofstream f(path(name));
        f << value;
        f.close();
        if (!CHECK(f.good()))
            std::printf("  cannot write %s to %s\n", value.c_str(), path(name).c_str());
    }

    /// A decimal parameter; exits 1 (naming the module) when it cannot be read,
    /// since then the module is not loaded and nothing else can be tested.
    unsigned read_uint(const char* name) const
    {
        const std::string text = first_line(path(name));
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
            std::printf("cannot read %s: is %s loaded?\n", path(name).c_str(), module.c_str());
            std::exit(1);
        }
        return static_cast<unsigned>(std::stoul(text));
    }
};

} // namespace guest
