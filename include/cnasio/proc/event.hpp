// Typed process-connector events (CN_IDX_PROC / CN_VAL_PROC), sans-IO:
//   event_types.hpp  the event-type table, the typed structs, names, for_each_field
//   event_mask.hpp   sets of event types (filters) and their names
//   decode.hpp       event_view (fields on demand) and decode() (the typed event)
#pragma once

#include <cnasio/proc/decode.hpp>
#include <cnasio/proc/event_mask.hpp>
#include <cnasio/proc/event_types.hpp>
