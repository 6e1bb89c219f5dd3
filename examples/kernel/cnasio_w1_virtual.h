/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSL-1.0 */
/*
 * cnasio_w1_virtual.h - what the cnasio_w1_virtual kernel module emulates,
 * shared by the module (kernel C) and by the user-space tests that check it
 * (C and C++, -Wpedantic clean: fixed-width fields, no kernel-only headers).
 *
 * The module registers NR_MASTERS virtual 1-Wire bus masters with the w1
 * core (wire.ko, w1_add_master_device), each with DEVICES emulated DS18B20
 * thermometers (family 0x28). The w1 core drives them like real hardware,
 * one time slot at a time (touch_bit) plus bus resets (reset_bus), so its
 * search algorithm, MATCH ROM selection and the netlink connector protocol
 * (CN_W1_IDX 3, CN_W1_VAL 1) run unchanged on top.
 *
 * ROM ids
 * -------
 * Device g (0-based, counted across masters: g = master * DEVICES + i) has
 * the 64-bit ROM id, least significant byte first on the wire:
 *   byte 0       family 0x28
 *   bytes 1..6   serial CNASIO_W1V_SERIAL_BASE + g (48 bits, little endian)
 *   byte 7       Dallas/Maxim CRC8 (x^8 + x^5 + x^4 + 1) of bytes 0..6
 * The w1 core names it "28-" + 12 hex digits of the serial (sysfs).
 *
 * Module parameters (/sys/module/cnasio_w1_virtual/parameters/)
 * -------------------------------------------------------------
 *   nr_masters  (load time) bus masters, 1..CNASIO_W1V_MAX_MASTERS (default 1)
 *   devices     (load time) DS18B20s per master, 0..CNASIO_W1V_MAX_DEVICES
 *               (default 3)
 *   temp_mc     (runtime) temperatures in millidegrees Celsius, one per
 *               device g, comma separated ("21500,-10250,125000"); clamped
 *               to -55000..125000 and rounded down to the device's resolution
 *               (1/16 degC at 12 bits). A CONVERT T samples the value when it
 *               starts. A write of fewer values leaves the others as they
 *               were; reading gives all 32. Default 25000.
 *   crc_error   (runtime) bit mask over g: READ SCRATCHPAD from such a device
 *               flips bit 0 of byte 0 on the wire while sending the CRC of
 *               the true bytes, so the reader sees a CRC mismatch (and a
 *               client that skips the check a temperature 1/16 degC off).
 *   absent      (runtime) bit mask over g: the device is unplugged (no
 *               presence pulse of its own, no answer).
 *   no_presence (runtime) 1 = every reset sees no presence pulse (a broken
 *               or shorted bus); the devices ignore the bus until it is 0.
 *   stuck       (runtime) bit mask over g: CONVERT T never completes (read
 *               slots keep returning 0, the scratchpad is not updated).
 *
 * The w1 core still runs its own periodic search (every 10 s by default,
 * wire.ko's `timeout`); it takes the bus between two netlink requests, never
 * inside one, and a conversion in progress survives it as on real hardware.
 *
 * DS18B20 behaviour emulated
 * --------------------------
 * ROM commands: SEARCH ROM 0xF0, ALARM SEARCH 0xEC (devices whose last
 * conversion gave T >= TH or T <= TL, integer degrees), READ ROM 0x33,
 * MATCH ROM 0x55, SKIP ROM 0xCC, RESUME 0xA5.
 * Function commands: CONVERT T 0x44 (read slots return 0 until 90% of the
 * datasheet's maximum conversion time for the configured resolution has
 * passed, then 1: real parts finish before their maximum, and a client that
 * waits the maximum must find the result whatever the timer tick),
 * READ SCRATCHPAD 0xBE (9 bytes, the ninth the CRC8 of the first eight,
 * then 1s), WRITE SCRATCHPAD 0x4E (TH, TL, configuration), COPY SCRATCHPAD
 * 0x48, RECALL E2 0xB8, READ POWER SUPPLY 0xB4 (1: externally powered).
 * At power-on (module load) the scratchpad reads
 *   50 05 4B 46 7F FF 0C 10 1C
 * i.e. 85 degC (the power-on reset value), TH 75, TL 70, 12-bit resolution.
 */
#ifndef CNASIO_W1_VIRTUAL_H
#define CNASIO_W1_VIRTUAL_H

#define CNASIO_W1V_FAMILY 0x28u
#define CNASIO_W1V_SERIAL_BASE 0x00C0A5100000ull
#define CNASIO_W1V_MAX_MASTERS 4u
#define CNASIO_W1V_MAX_DEVICES 8u
#define CNASIO_W1V_MAX_TOTAL (CNASIO_W1V_MAX_MASTERS * CNASIO_W1V_MAX_DEVICES)
#define CNASIO_W1V_DEFAULT_DEVICES 3u
#define CNASIO_W1V_DEFAULT_TEMP_MC 25000
#define CNASIO_W1V_MIN_TEMP_MC (-55000)
#define CNASIO_W1V_MAX_TEMP_MC 125000

/* DS18B20 ROM and function commands. */
#define CNASIO_W1V_SEARCH_ROM 0xF0u
#define CNASIO_W1V_ALARM_SEARCH 0xECu
#define CNASIO_W1V_READ_ROM 0x33u
#define CNASIO_W1V_MATCH_ROM 0x55u
#define CNASIO_W1V_SKIP_ROM 0xCCu
#define CNASIO_W1V_RESUME 0xA5u
#define CNASIO_W1V_CONVERT_T 0x44u
#define CNASIO_W1V_READ_SCRATCHPAD 0xBEu
#define CNASIO_W1V_WRITE_SCRATCHPAD 0x4Eu
#define CNASIO_W1V_COPY_SCRATCHPAD 0x48u
#define CNASIO_W1V_RECALL_E2 0xB8u
#define CNASIO_W1V_READ_POWER_SUPPLY 0xB4u

#define CNASIO_W1V_SCRATCHPAD_SIZE 9u
/* Configuration register (scratchpad byte 4): resolution in bits 6..5. */
#define CNASIO_W1V_CONFIG_9BIT 0x1Fu
#define CNASIO_W1V_CONFIG_10BIT 0x3Fu
#define CNASIO_W1V_CONFIG_11BIT 0x5Fu
#define CNASIO_W1V_CONFIG_12BIT 0x7Fu

/* Maximum conversion time in milliseconds for 9 + r bits (datasheet:
 * 93.75 / 187.5 / 375 / 750 ms, rounded up); the emulation takes 90% of it. */
#define CNASIO_W1V_CONVERT_MS(r) ((r) == 0 ? 94u : (r) == 1 ? 188u : (r) == 2 ? 375u : 750u)

#endif /* CNASIO_W1_VIRTUAL_H */
