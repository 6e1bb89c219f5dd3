// cnasio/cnasio.hpp - the whole library, bottom layer first.
#pragma once

#include <cnasio/error.hpp>
#include <cnasio/netlink/protocol.hpp>
#include <cnasio/netlink/options.hpp>
#include <cnasio/netlink/netns.hpp>
#include <cnasio/connector/message.hpp>
#include <cnasio/connector/framing.hpp>
#include <cnasio/connector/socket.hpp>
#include <cnasio/connector/registry.hpp>
#include <cnasio/options.hpp>
#include <cnasio/client_options.hpp>
#include <cnasio/subscription.hpp>
#include <cnasio/part_stream.hpp>
#include <cnasio/client.hpp>
#include <cnasio/proc/event.hpp>
#include <cnasio/proc/loss.hpp>
#include <cnasio/proc/filter.hpp>
#include <cnasio/proc/listener.hpp>
#include <cnasio/proc/process_table.hpp>
#include <cnasio/proc/procfs.hpp>
#include <cnasio/proc/container.hpp>
#include <cnasio/proc/tracker.hpp>
#include <cnasio/w1/protocol.hpp>
#include <cnasio/w1/ds18b20.hpp>
#include <cnasio/w1/client.hpp>
