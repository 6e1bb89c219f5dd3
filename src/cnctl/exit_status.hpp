// cnctl's exit statuses.
#pragma once

namespace cnctl {

inline constexpr int exit_ok = 0;      ///< done (also: interrupted by SIGINT/SIGTERM, or the reader of stdout went away)
inline constexpr int exit_runtime = 1; ///< runtime error; the message on stderr names the cause
inline constexpr int exit_usage = 2;   ///< bad command line; one line on stderr
inline constexpr int exit_timeout = 3; ///< a request got no reply in time

} // namespace cnctl
