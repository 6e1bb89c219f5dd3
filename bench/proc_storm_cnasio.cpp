// cnasio side of the proc storm benchmark: not plugged in yet.
#include "proc_storm.hpp"

std::unique_ptr<bench::storm::listener> bench::storm::make_cnasio_listener() { return nullptr; }
