// cnasio/cnasio.hpp - the whole library, bottom layer first.
#pragma once

#include <cnasio/error.hpp>
#include <cnasio/netlink/protocol.hpp>
#include <cnasio/netlink/options.hpp>
#include <cnasio/netlink/netns.hpp>
#include <cnasio/connector/message.hpp>
#include <cnasio/connector/framing.hpp>
#include <cnasio/connector/socket.hpp>
