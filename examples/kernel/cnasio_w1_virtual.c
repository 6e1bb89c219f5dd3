// SPDX-License-Identifier: GPL-2.0
/*
 * cnasio_w1_virtual - virtual 1-Wire bus masters with emulated DS18B20
 * thermometers, so that w1 clients (sysfs, the w1 netlink connector) can be
 * tested in a VM without hardware. What is emulated, the ROM ids and the
 * module parameters are documented in cnasio_w1_virtual.h.
 *
 * The bus is emulated at the level of time slots: the w1 core calls
 * touch_bit() for every bit it writes (a write-1 slot doubles as a read
 * slot) and reset_bus() for a reset pulse. Each emulated device is a small
 * state machine that, per slot, says what it drives (0 = pulls the line low,
 * 1 = releases it) and then samples the resulting line level. The line is
 * the wired AND of the master's bit and every device's output, exactly as on
 * a real open-drain bus, so the core's own SEARCH ROM (w1_triplet without a
 * triplet callback) resolves several devices bit by bit.
 *
 * Kernel API spread (5.10 .. 6.1+): struct w1_bus_master and
 * w1_add_master_device()/w1_remove_master_device() are the same in both;
 * the core serialises all calls into one master with its bus_mutex, so the
 * per-master state needs no lock of its own. Module parameters change under
 * the parameter lock only: they are read with READ_ONCE, one value at a time.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitops.h>
#include <linux/errno.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/w1.h>

#include "cnasio_w1_virtual.h"

static unsigned int nr_masters = 1;
module_param(nr_masters, uint, 0444);
MODULE_PARM_DESC(nr_masters, "virtual bus masters (1..4, default 1)");

static unsigned int devices = CNASIO_W1V_DEFAULT_DEVICES;
module_param(devices, uint, 0444);
MODULE_PARM_DESC(devices, "emulated DS18B20s per master (0..8, default 3)");

static int temp_mc[CNASIO_W1V_MAX_TOTAL] = {
	[0 ... CNASIO_W1V_MAX_TOTAL - 1] = CNASIO_W1V_DEFAULT_TEMP_MC
};
module_param_array(temp_mc, int, NULL, 0644);
MODULE_PARM_DESC(temp_mc, "temperature of each device in millidegrees C (runtime, comma separated)");

static unsigned int crc_error;
module_param(crc_error, uint, 0644);
MODULE_PARM_DESC(crc_error, "bit mask of devices whose scratchpad reads fail their CRC (runtime)");

static unsigned int absent;
module_param(absent, uint, 0644);
MODULE_PARM_DESC(absent, "bit mask of unplugged devices (runtime)");

static unsigned int no_presence;
module_param(no_presence, uint, 0644);
MODULE_PARM_DESC(no_presence, "1 = no presence pulse after any reset (runtime)");

static unsigned int stuck;
module_param(stuck, uint, 0644);
MODULE_PARM_DESC(stuck, "bit mask of devices whose conversions never complete (runtime)");

enum vdev_state {
	ST_IDLE,       /* deselected: ignores the bus until the next reset */
	ST_ROM_CMD,    /* receiving the ROM command byte */
	ST_SEARCH,     /* SEARCH ROM / ALARM SEARCH: bit, complement, direction */
	ST_MATCH,      /* MATCH ROM: receiving 64 id bits */
	ST_SEND,       /* sending tx[] (READ ROM, READ SCRATCHPAD) */
	ST_FN_CMD,     /* selected: receiving the function command byte */
	ST_CONVERTING, /* after CONVERT T: read slots report busy (0) / done (1) */
	ST_WRITE_SP,   /* WRITE SCRATCHPAD: receiving TH, TL, configuration */
	ST_RELEASED,   /* command done: drives 1 until the next reset */
};

struct vdev {
	unsigned int g; /* index across masters: bit g of the masks, temp_mc[g] */
	u8 rom[8];
	u8 sp[CNASIO_W1V_SCRATCHPAD_SIZE]; /* true scratchpad; sp[8] is its CRC */
	u8 eeprom[3];                      /* TH, TL, configuration */
	bool alarm;                        /* set by the last conversion */
	bool resumable;                    /* selected by MATCH ROM or SEARCH */
	bool converting;
	unsigned long convert_done;        /* jiffies */
	s16 convert_raw;                   /* sampled when CONVERT T started */

	enum vdev_state state;
	unsigned int bit;   /* bit position within the current state */
	unsigned int phase; /* SEARCH: 0 id bit, 1 complement, 2 direction */
	bool alarm_search;
	u8 rx;              /* bits received so far (LSB first) */
	u8 tx[CNASIO_W1V_SCRATCHPAD_SIZE];
	unsigned int tx_bits;
	enum vdev_state after_send; /* ST_FN_CMD after READ ROM, else ST_RELEASED */
};

struct vmaster {
	struct w1_bus_master bus;
	struct vdev dev[CNASIO_W1V_MAX_DEVICES];
	unsigned int count;
	bool registered;
	char name[24];
};

static struct vmaster masters[CNASIO_W1V_MAX_MASTERS];

/* Dallas/Maxim CRC8, polynomial x^8 + x^5 + x^4 + 1 (reflected 0x8C), as the
 * DS18B20 computes it over the ROM id and the scratchpad. */
static u8 crc8_maxim(const u8 *data, unsigned int len)
{
	u8 crc = 0;
	unsigned int i, b;

	for (i = 0; i < len; i++) {
		crc ^= data[i];
		for (b = 0; b < 8; b++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x8C : crc >> 1;
	}
	return crc;
}

static bool mask_has(unsigned int mask, unsigned int g)
{
	return g < 32 && (mask >> g) & 1;
}

static unsigned int resolution_of(u8 config)
{
	return (config >> 5) & 3;
}

/* Millidegrees -> the DS18B20's 16-bit two's complement in 1/16 degC, rounded
 * down (towards minus infinity) and with the bits below the resolution
 * cleared, as the device reports them. */
static s16 raw_from_mc(int mc, unsigned int resolution)
{
	s64 sixteenths;

	mc = clamp(mc, CNASIO_W1V_MIN_TEMP_MC, CNASIO_W1V_MAX_TEMP_MC);
	sixteenths = (s64)mc * 16;
	if (sixteenths >= 0)
		sixteenths = sixteenths / 1000;
	else
		sixteenths = -((-sixteenths + 999) / 1000);
	return (s16)(sixteenths & ~(s64)((1u << (3 - resolution)) - 1));
}

static void sp_update_crc(struct vdev *d)
{
	d->sp[8] = crc8_maxim(d->sp, 8);
}

static void vdev_power_on(struct vdev *d, unsigned int g)
{
	u64 serial = CNASIO_W1V_SERIAL_BASE + g;
	static const u8 power_on[8] = { 0x50, 0x05, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10 };
	unsigned int i;

	memset(d, 0, sizeof(*d));
	d->g = g;
	d->rom[0] = CNASIO_W1V_FAMILY;
	for (i = 0; i < 6; i++)
		d->rom[1 + i] = (u8)(serial >> (8 * i));
	d->rom[7] = crc8_maxim(d->rom, 7);
	memcpy(d->sp, power_on, sizeof(power_on));
	sp_update_crc(d);
	memcpy(d->eeprom, &d->sp[2], 3);
	d->state = ST_IDLE;
}

/* Completes a conversion whose time has passed: the scratchpad then holds
 * the temperature sampled at CONVERT T, and the alarm flag is re-evaluated. */
static void vdev_settle(struct vdev *d)
{
	s8 th, tl;
	int whole;

	if (!d->converting || mask_has(READ_ONCE(stuck), d->g) ||
	    time_before(jiffies, d->convert_done))
		return;
	d->converting = false;
	d->sp[0] = (u8)((u16)d->convert_raw & 0xFF);
	d->sp[1] = (u8)((u16)d->convert_raw >> 8);
	sp_update_crc(d);
	th = (s8)d->sp[2];
	tl = (s8)d->sp[3];
	whole = d->convert_raw >> 4; /* arithmetic: floor to whole degrees */
	d->alarm = whole >= th || whole <= tl;
}

static void vdev_start_send(struct vdev *d, const u8 *bytes, unsigned int len,
			    enum vdev_state after)
{
	memcpy(d->tx, bytes, len);
	d->tx_bits = len * 8;
	d->after_send = after;
	d->bit = 0;
	d->state = ST_SEND;
}

static void vdev_rom_command(struct vdev *d, u8 cmd)
{
	bool resumable = d->resumable;

	d->resumable = false;
	d->bit = 0;
	d->rx = 0;
	switch (cmd) {
	case CNASIO_W1V_SEARCH_ROM:
	case CNASIO_W1V_ALARM_SEARCH:
		d->alarm_search = cmd == CNASIO_W1V_ALARM_SEARCH;
		d->phase = 0;
		d->state = (d->alarm_search && !d->alarm) ? ST_IDLE : ST_SEARCH;
		break;
	case CNASIO_W1V_MATCH_ROM:
		d->state = ST_MATCH;
		break;
	case CNASIO_W1V_READ_ROM:
		vdev_start_send(d, d->rom, 8, ST_FN_CMD);
		break;
	case CNASIO_W1V_SKIP_ROM:
		d->state = ST_FN_CMD;
		break;
	case CNASIO_W1V_RESUME:
		d->resumable = resumable;
		d->state = resumable ? ST_FN_CMD : ST_IDLE;
		break;
	default:
		d->state = ST_IDLE;
		break;
	}
}

static void vdev_function_command(struct vdev *d, u8 cmd)
{
	u8 out[CNASIO_W1V_SCRATCHPAD_SIZE];
	unsigned int r;

	d->bit = 0;
	d->rx = 0;
	switch (cmd) {
	case CNASIO_W1V_CONVERT_T:
		r = resolution_of(d->sp[4]);
		d->convert_raw = raw_from_mc(READ_ONCE(temp_mc[d->g]), r);
		/* 90% of the datasheet maximum: msecs_to_jiffies rounds up to a
		 * tick, and a client waiting exactly the maximum must not race it. */
		d->convert_done = jiffies + msecs_to_jiffies(CNASIO_W1V_CONVERT_MS(r) * 9 / 10);
		d->converting = true;
		d->state = ST_CONVERTING;
		break;
	case CNASIO_W1V_READ_SCRATCHPAD:
		memcpy(out, d->sp, sizeof(out));
		if (mask_has(READ_ONCE(crc_error), d->g))
			out[0] ^= 0x01; /* a bit error on the wire, after the CRC */
		vdev_start_send(d, out, sizeof(out), ST_RELEASED);
		break;
	case CNASIO_W1V_WRITE_SCRATCHPAD:
		d->state = ST_WRITE_SP;
		break;
	case CNASIO_W1V_COPY_SCRATCHPAD:
		memcpy(d->eeprom, &d->sp[2], 3);
		d->state = ST_RELEASED;
		break;
	case CNASIO_W1V_RECALL_E2:
		memcpy(&d->sp[2], d->eeprom, 3);
		sp_update_crc(d);
		d->state = ST_RELEASED;
		break;
	case CNASIO_W1V_READ_POWER_SUPPLY:
		d->state = ST_RELEASED; /* 1s: externally powered */
		break;
	default:
		d->state = ST_IDLE;
		break;
	}
}

/* What the device drives in this slot: 0 pulls the line low, 1 releases it. */
static u8 vdev_drive(struct vdev *d)
{
	unsigned int rom_bit;

	switch (d->state) {
	case ST_SEARCH:
		rom_bit = (d->rom[d->bit / 8] >> (d->bit % 8)) & 1;
		if (d->phase == 0)
			return rom_bit;
		if (d->phase == 1)
			return !rom_bit;
		return 1;
	case ST_SEND:
		return (d->tx[d->bit / 8] >> (d->bit % 8)) & 1;
	case ST_CONVERTING:
		vdev_settle(d);
		return d->converting ? 0 : 1;
	default:
		return 1;
	}
}

/* Shifts in one received bit; returns true when a whole byte is in d->rx. */
static bool vdev_shift_in(struct vdev *d, u8 line)
{
	d->rx |= (u8)(line << (d->bit % 8));
	d->bit++;
	return d->bit % 8 == 0;
}

/* The device samples the line level at the end of the slot. */
static void vdev_sample(struct vdev *d, u8 line)
{
	unsigned int rom_bit;
	unsigned int n;

	switch (d->state) {
	case ST_ROM_CMD:
		if (vdev_shift_in(d, line))
			vdev_rom_command(d, d->rx);
		break;
	case ST_SEARCH:
		if (d->phase < 2) {
			d->phase++;
			break;
		}
		rom_bit = (d->rom[d->bit / 8] >> (d->bit % 8)) & 1;
		if (line != rom_bit) {
			d->state = ST_IDLE; /* the master took the other branch */
			break;
		}
		d->phase = 0;
		if (++d->bit == 64) {
			d->resumable = true;
			d->bit = 0;
			d->rx = 0;
			d->state = ST_FN_CMD;
		}
		break;
	case ST_MATCH:
		rom_bit = (d->rom[d->bit / 8] >> (d->bit % 8)) & 1;
		if (line != rom_bit) {
			d->state = ST_IDLE;
			break;
		}
		if (++d->bit == 64) {
			d->resumable = true;
			d->bit = 0;
			d->rx = 0;
			d->state = ST_FN_CMD;
		}
		break;
	case ST_SEND:
		if (++d->bit == d->tx_bits) {
			/* READ ROM done: like SKIP ROM, a function command follows. */
			d->bit = 0;
			d->rx = 0;
			d->state = d->after_send;
		}
		break;
	case ST_FN_CMD:
		if (vdev_shift_in(d, line))
			vdev_function_command(d, d->rx);
		break;
	case ST_WRITE_SP:
		if (!vdev_shift_in(d, line))
			break;
		n = d->bit / 8; /* 1: TH, 2: TL, 3: configuration */
		if (n == 3)
			d->sp[4] = (d->rx & 0x60) | 0x1F;
		else
			d->sp[1 + n] = d->rx;
		d->rx = 0;
		sp_update_crc(d);
		if (n == 3)
			d->state = ST_RELEASED;
		break;
	default:
		break;
	}
}

static bool vdev_on_bus(const struct vdev *d)
{
	return !READ_ONCE(no_presence) && !mask_has(READ_ONCE(absent), d->g);
}

static u8 vm_touch_bit(void *data, u8 bit)
{
	struct vmaster *m = data;
	u8 line = bit ? 1 : 0;
	unsigned int i;

	for (i = 0; i < m->count; i++)
		if (vdev_on_bus(&m->dev[i]))
			line &= vdev_drive(&m->dev[i]);
	for (i = 0; i < m->count; i++)
		if (vdev_on_bus(&m->dev[i]))
			vdev_sample(&m->dev[i], line);
	return line;
}

/* Returns 0 when at least one device answered with a presence pulse, 1 when
 * none did (the w1 core's convention). */
static u8 vm_reset_bus(void *data)
{
	struct vmaster *m = data;
	bool presence = false;
	unsigned int i;

	for (i = 0; i < m->count; i++) {
		struct vdev *d = &m->dev[i];

		vdev_settle(d);
		d->bit = 0;
		d->rx = 0;
		if (!vdev_on_bus(d)) {
			d->state = ST_IDLE;
			continue;
		}
		d->state = ST_ROM_CMD;
		presence = true;
	}
	return presence ? 0 : 1;
}

static void vm_unregister_all(void)
{
	unsigned int i;

	for (i = 0; i < CNASIO_W1V_MAX_MASTERS; i++) {
		if (masters[i].registered) {
			w1_remove_master_device(&masters[i].bus);
			masters[i].registered = false;
		}
	}
}

static int __init vm_init(void)
{
	unsigned int i, j;
	int err;

	if (nr_masters < 1 || nr_masters > CNASIO_W1V_MAX_MASTERS) {
		pr_err("nr_masters must be 1..%u, not %u\n", CNASIO_W1V_MAX_MASTERS, nr_masters);
		return -EINVAL;
	}
	if (devices > CNASIO_W1V_MAX_DEVICES) {
		pr_err("devices must be 0..%u, not %u\n", CNASIO_W1V_MAX_DEVICES, devices);
		return -EINVAL;
	}
	for (i = 0; i < nr_masters; i++) {
		struct vmaster *m = &masters[i];

		m->count = devices;
		for (j = 0; j < devices; j++)
			vdev_power_on(&m->dev[j], i * devices + j);
		snprintf(m->name, sizeof(m->name), "cnasio_w1_virtual.%u", i);
		m->bus.data = m;
		m->bus.touch_bit = vm_touch_bit;
		m->bus.reset_bus = vm_reset_bus;
		m->bus.dev_id = m->name;
		err = w1_add_master_device(&m->bus);
		if (err) {
			pr_err("w1_add_master_device failed: %d\n", err);
			vm_unregister_all();
			return err;
		}
		m->registered = true;
	}
	pr_info("%u virtual bus master(s), %u DS18B20 each\n", nr_masters, devices);
	return 0;
}

static void __exit vm_exit(void)
{
	vm_unregister_all();
	pr_info("unloaded\n");
}

module_init(vm_init);
module_exit(vm_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Virtual 1-Wire bus masters with emulated DS18B20s, for testing w1 clients");
MODULE_AUTHOR("cnasio");
