// cnasio/w1/ds18b20.hpp - the DS18B20 thermometer (family 0x28), without any I/O.
//
// From the Maxim datasheet: the function commands, the 9-byte scratchpad
// (temperature LSB, MSB, TH, TL, configuration, 3 reserved, CRC8 of the
// eight), the resolution in configuration bits 6..5 (9 to 12 bits) and the
// conversion time it takes (93.75 ms at 9 bits, doubling per bit: 750 ms at
// 12). The temperature register is a signed 16-bit count of 1/16 °C; at
// lower resolutions its lowest bits are undefined. It holds +85 °C (0x0550)
// from power-on until a conversion has run.
#pragma once

#include <cnasio/error.hpp>
#include <cnasio/w1/protocol.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

namespace cnasio::w1::ds18b20 {

inline constexpr std::uint8_t family = 0x28;
inline constexpr std::uint8_t convert_t = 0x44;        ///< start a temperature conversion
inline constexpr std::uint8_t read_scratchpad = 0xbe;  ///< then read 9 bytes
inline constexpr std::size_t scratchpad_size = 9;
inline constexpr std::int16_t power_on_raw = 0x0550;   ///< +85 °C

/// A decoded reading.
struct reading {
    std::int16_t raw = 0;  ///< the temperature register, 1/16 °C (low bits cleared below 12-bit resolution)
    unsigned resolution = 12; ///< 9..12 bits
    /// Thousandths of a degree Celsius, exact (1/16 °C = 62.5 m°C; rounded towards zero).
    std::int32_t millicelsius() const noexcept { return raw * 125 / 2; }
    double celsius() const noexcept { return raw / 16.0; }
};

/// The resolution a configuration byte selects (bits 6..5: 9 + R1R0).
constexpr unsigned resolution_of(std::uint8_t config) noexcept { return 9u + ((config >> 5) & 3u); }

/// How long a conversion takes at `resolution` bits (the datasheet's maximum).
constexpr std::chrono::microseconds conversion_time(unsigned resolution) noexcept {
    return std::chrono::microseconds(93750) * (1u << (resolution < 9 ? 0 : (resolution > 12 ? 3 : resolution - 9)));
}

/// Decodes a scratchpad: error::w1_crc_mismatch when its CRC8 fails, or when
/// it is all zeros (what a bus with no answering device reads, and which
/// passes the CRC); error::w1_reply_malformed when it is not 9 bytes.
/// With `converted` (a conversion was asked for and waited for), the
/// power-on value +85 °C is error::w1_power_on_reset; a sensor really at
/// 85 °C reads so too, which is why conversions are checked this way.
inline error_code decode(std::span<const std::byte> scratchpad, bool converted, reading& out) noexcept {
    if (scratchpad.size() != scratchpad_size) return error::w1_reply_malformed;
    std::array<std::uint8_t, scratchpad_size> b{};
    bool all_zero = true;
    for (std::size_t i = 0; i < scratchpad_size; ++i) {
        b[i] = static_cast<std::uint8_t>(scratchpad[i]);
        all_zero = all_zero && b[i] == 0;
    }
    if (all_zero || crc8(b) != 0) return error::w1_crc_mismatch;
    out.resolution = resolution_of(b[4]);
    auto raw = static_cast<std::int16_t>(static_cast<std::uint16_t>(b[0] | (b[1] << 8)));
    // Undefined low bits below 12-bit resolution (bit 0 at 11 bits, bits 1..0 at 10, 2..0 at 9).
    const unsigned undefined = 12u - out.resolution;
    raw = static_cast<std::int16_t>(raw & ~((1 << undefined) - 1));
    out.raw = raw;
    if (converted && raw == power_on_raw) return error::w1_power_on_reset;
    return {};
}

} // namespace cnasio::w1::ds18b20
