/*
 * A hostile x86_64 guest for Tandem's VMM: entered in 64-bit mode at the
 * bzImage's 64-bit entry point (paging on, 0-4 GiB identity-mapped,
 * interrupts off), it finds every virtio-mmio device and writes garbage
 * into every register and queue of each, round after round; scribbles
 * over empty device slots, the 16550 and the i8042; then resets each
 * virtio device and drives it properly, to show it still works, and
 * powers the machine off through the ACPI sleep register.
 *
 * Its lines on COM1:
 *   HOSTILE: slot N: device ID       each virtio-mmio device found
 *   HOSTILE: garbage done: R rounds, N register accesses
 *                                    the attack is over (rounds=R on the
 *                                    command line; 8 without)
 *   HOSTILE: uart works              after garbage into the 16550
 *   HOSTILE: rng works: X            a fresh request answered, 32 bytes
 *   HOSTILE: disk works: TEXT        sector 0 read back (a read-only disk)
 *   HOSTILE: net works: N bytes sent a frame sent on the transmit queue
 *   HOSTILE: vsock works: cid N      a connection request sent
 *   HOSTILE: gpu works: WxH          the display's size read back
 *   HOSTILE: input works: NAME       an input device's name read back
 *   HOSTILE: virtio-console works    (printed through virtio-console)
 *   HOSTILE-DONE ok=N failed=M       then the ACPI power-off
 *
 * The only addresses the garbage names inside guest RAM are the garbage
 * area's: this program's own code, data and stack stay its own, so the
 * guest survives its own attack and can report.
 */

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define RAM_END      0x4000000UL  /* the test gives the guest 64 MiB */
#define GARBAGE      0x1000000UL  /* 1 MiB of garbage the queues point into */
#define GARBAGE_SIZE 0x100000UL
#define QUEUES       0x2000000UL  /* the honest drivers' rings, 64 KiB per device */
#define BUFFERS      0x2100000UL  /* and their buffers, 4 KiB per device */
#define VIRTIO_BASE  0xd0000000UL
#define VIRTIO_SLOTS 16
#define ROUNDS       8            /* unless the command line says rounds=N */
#define COM1         0x3f8
#define I8042_DATA   0x60
#define I8042_CMD    0x64
#define POWER        0x600        /* the ACPI sleep control register */

/* virtio-mmio registers (virtio 1.2, 4.2.2) */
#define R_MAGIC      0x000
#define R_VERSION    0x004
#define R_DEVICE_ID  0x008
#define R_DEV_FEAT   0x010
#define R_DEV_FSEL   0x014
#define R_DRV_FEAT   0x020
#define R_DRV_FSEL   0x024
#define R_QSEL       0x030
#define R_QNUM_MAX   0x034
#define R_QNUM       0x038
#define R_QREADY     0x044
#define R_QNOTIFY    0x050
#define R_ISR        0x060
#define R_IACK       0x064
#define R_STATUS     0x070
#define R_QDESC      0x080
#define R_QDRIVER    0x090
#define R_QDEVICE    0x0a0
#define R_CONFIG     0x100

#define S_ACK        1
#define S_DRIVER     2
#define S_DRIVER_OK  4
#define S_FEATURES_OK 8

#define D_NEXT       1
#define D_WRITE      2

/* accesses counts the guest's device register accesses. */
static u64 accesses;

static inline void outb(u16 port, u8 v) { accesses++; __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { accesses++; __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { accesses++; __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; accesses++; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; accesses++; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* Memory accesses, to RAM or to device registers: the attacks count
 * their register accesses themselves. */
static inline void w8(u64 a, u8 v) { *(volatile u8 *)a = v; }
static inline void w16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline void w32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline void w64(u64 a, u64 v) { *(volatile u64 *)a = v; }
static inline u8 r8(u64 a) { return *(volatile u8 *)a; }
static inline u16 r16(u64 a) { return *(volatile u16 *)a; }
static inline u32 r32(u64 a) { return *(volatile u32 *)a; }
static inline u64 r64(u64 a) { return *(volatile u64 *)a; }
static inline void barrier(void) { __asm__ volatile("mfence" : : : "memory"); }

static u64 seed = 0x74616e64656d2121UL;

static u64 rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

/* ---- COM1 ---- */

static void uart_init(void)
{
	outb(COM1 + 1, 0x00);  /* no interrupts */
	outb(COM1 + 3, 0x80);  /* DLAB */
	outb(COM1 + 0, 0x01);  /* 115200 */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);  /* 8N1 */
	outb(COM1 + 2, 0x07);  /* FIFO on, cleared */
	outb(COM1 + 4, 0x03);  /* DTR, RTS; loopback off */
}

static void putc_(char c)
{
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (u8)c);
}

static void puts_(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			putc_('\r');
		putc_(*s);
	}
}

static void putn(u64 v)
{
	char b[21];
	int i = 20;
	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_(b + i);
}

static void puthex(u64 v, int digits)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = digits - 1; i >= 0; i--)
		putc_(hex[(v >> (4 * i)) & 0xf]);
}

static void memset_(u64 a, u8 v, u64 n)
{
	for (u64 i = 0; i < n; i++)
		w8(a + i, v);
}

/* ---- garbage ---- */

/* addr: a guest-physical address to hand a device: inside the garbage
 * area, at the end of RAM, beyond it, wrapping, or anything at all. */
static u64 addr(void)
{
	switch (rnd() % 8) {
	case 0: case 1: case 2:
		return GARBAGE + rnd() % GARBAGE_SIZE;
	case 3:
		return RAM_END - (rnd() % 64);
	case 4:
		return RAM_END + (rnd() % 0x10000000UL);
	case 5:
		return 0xfffffffffffff000UL + (rnd() % 0x1000);
	case 6:
		return VIRTIO_BASE + (rnd() % 0x10000);
	default:
		return rnd();
	}
}

/* value: a register value, biased towards the edges. */
static u32 value(void)
{
	switch (rnd() % 6) {
	case 0: return 0;
	case 1: return 0xffffffffu;
	case 2: return 0x80000000u;
	case 3: return (u32)(rnd() % 1025);
	default: return (u32)rnd();
	}
}

static void scramble_garbage(void)
{
	for (u64 i = 0; i < GARBAGE_SIZE; i += 8)
		w64(GARBAGE + i, rnd());
}

/* Descriptor tables in the garbage area that look almost right: chains,
 * loops, indirect tables, lengths at the edges. */
static void forge_descriptors(u64 table, u32 n)
{
	for (u32 i = 0; i < n; i++) {
		u64 d = table + 16 * (u64)i;
		w64(d, addr());
		w32(d + 8, value());
		w16(d + 12, (u16)(rnd() & 7));       /* NEXT, WRITE, INDIRECT */
		w16(d + 14, (u16)(rnd() % (n + 2)));  /* next, sometimes past the end */
	}
}

static void set_queue_addrs(u64 base)
{
	accesses += 6;
	u64 a = addr(), b = addr(), c = addr();
	w32(base + R_QDESC, (u32)a);
	w32(base + R_QDESC + 4, (u32)(a >> 32));
	w32(base + R_QDRIVER, (u32)b);
	w32(base + R_QDRIVER + 4, (u32)(b >> 32));
	w32(base + R_QDEVICE, (u32)c);
	w32(base + R_QDEVICE + 4, (u32)(c >> 32));
}

/* A driver's sequence with garbage in it: features, queues whose rings
 * are garbage or outside RAM, DRIVER_OK, notifications, then the rings
 * changed under the device's feet and notified again. */
static void attack_driver(u64 base)
{
	accesses += 10;
	w32(base + R_STATUS, 0);
	w32(base + R_STATUS, S_ACK | S_DRIVER);
	for (int i = 0; i < 3; i++) {
		w32(base + R_DRV_FSEL, (u32)(rnd() % 3));
		w32(base + R_DRV_FEAT, value());
	}
	w32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	int queues = (int)(rnd() % 4) + 1;
	for (int q = 0; q < queues; q++) {
		w32(base + R_QSEL, rnd() % 4 ? (u32)q : value());
		w32(base + R_QNUM, rnd() % 2 ? 1u << (rnd() % 10) : value());
		set_queue_addrs(base);
		u64 table = (GARBAGE + rnd() % (GARBAGE_SIZE / 2)) & ~15UL;
		forge_descriptors(table, 64);
		if (rnd() % 2) {
			w32(base + R_QDESC, (u32)table);
			w32(base + R_QDESC + 4, 0);
		}
		w32(base + R_QREADY, rnd() % 4 ? 1 : value());
		accesses += 4;
	}
	w32(base + R_STATUS, rnd() % 4 ? (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK) : value());
	for (int i = 0; i < 8; i++) {
		w32(base + R_QNOTIFY, rnd() % 3 ? (u32)(rnd() % 4) : value());
		accesses++;
		/* the avail index runs ahead, the descriptors change */
		for (int j = 0; j < 64; j++)
			w64(GARBAGE + (rnd() % GARBAGE_SIZE & ~7UL), rnd());
	}
	w32(base + R_QSEL, 0xffffffffu);
	w32(base + R_QNOTIFY, 0xffffffffu);
	w32(base + R_IACK, value());
}

/* Every register, every access size, anything written, everything read. */
static void attack_registers(u64 base)
{
	for (u64 off = 0; off < 0x200; off += 4) {
		if (off == R_STATUS && rnd() % 2)
			continue;
		w32(base + off, value());
		(void)r32(base + off);
		accesses += 2;
	}
	for (int i = 0; i < 256; i++) {
		u64 off = rnd() % 0x1000;
		switch (rnd() % 4) {
		case 0: w8(base + off, (u8)rnd()); (void)r8(base + off); break;
		case 1: w16(base + (off & ~1UL), (u16)rnd()); (void)r16(base + (off & ~1UL)); break;
		case 2: w32(base + (off & ~3UL), value()); (void)r32(base + (off & ~3UL)); break;
		default: w64(base + (off & ~7UL), rnd()); (void)r64(base + (off & ~7UL)); break;
		}
		accesses += 2;
	}
}

/* ---- honest drivers ---- */

struct dev {
	u64 base;
	u32 id;
};

static struct dev devs[VIRTIO_SLOTS];
static int ndevs;

/* rings of one queue of num entries at q: descriptors, avail, used */
#define RING_DESC(q)  (q)
#define RING_AVAIL(q) ((q) + 0x1000)
#define RING_USED(q)  ((q) + 0x2000)

/* setup resets the device, negotiates VERSION_1 only, and makes queues
 * 0 to n-1 ready with 8 entries each, queue q's rings at rings + 0x3000 q;
 * 0 when the device took it all. */
static int setup(u64 base, u32 n, u64 rings)
{
	w32(base + R_STATUS, 0);
	for (int i = 0; i < 1000000 && r32(base + R_STATUS) != 0; i++)
		;
	if (r32(base + R_STATUS) != 0)
		return -1;
	w32(base + R_STATUS, S_ACK);
	w32(base + R_STATUS, S_ACK | S_DRIVER);
	w32(base + R_DRV_FSEL, 1);
	w32(base + R_DRV_FEAT, 1);  /* VIRTIO_F_VERSION_1 */
	w32(base + R_DRV_FSEL, 0);
	w32(base + R_DRV_FEAT, 0);
	w32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(r32(base + R_STATUS) & S_FEATURES_OK))
		return -2;
	for (u32 q = 0; q < n; q++) {
		u64 r = rings + 0x3000 * (u64)q;
		memset_(r, 0, 0x3000);
		w32(base + R_QSEL, q);
		if (r32(base + R_QNUM_MAX) < 8)
			return -3;
		w32(base + R_QNUM, 8);
		w32(base + R_QDESC, (u32)RING_DESC(r));
		w32(base + R_QDESC + 4, 0);
		w32(base + R_QDRIVER, (u32)RING_AVAIL(r));
		w32(base + R_QDRIVER + 4, 0);
		w32(base + R_QDEVICE, (u32)RING_USED(r));
		w32(base + R_QDEVICE + 4, 0);
		w32(base + R_QREADY, 1);
	}
	w32(base + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (r32(base + R_STATUS) & 0x40)  /* DEVICE_NEEDS_RESET */
		return -4;
	return 0;
}

static void desc(u64 rings, int i, u64 a, u32 len, u16 flags, u16 next)
{
	u64 d = RING_DESC(rings) + 16 * (u64)i;
	w64(d, a);
	w32(d + 8, len);
	w16(d + 12, flags);
	w16(d + 14, next);
}

/* submit offers the chain at descriptor 0 on queue qi and waits for the
 * device to use it; it returns the used length, or -1. */
static long submit(u64 base, u32 qi, u64 rings)
{
	u64 avail = RING_AVAIL(rings), used = RING_USED(rings);
	w16(avail + 4, 0);     /* ring[0] = descriptor 0 */
	barrier();
	w16(avail + 2, 1);     /* idx */
	barrier();
	w32(base + R_QNOTIFY, qi);
	for (long i = 0; i < 2000000000L; i++) {
		if (r16(used + 2) == 1) {
			barrier();
			w32(base + R_IACK, r32(base + R_ISR));
			return (long)r32(used + 8);
		}
		__asm__ volatile("pause");
	}
	return -1;
}

static int ok, failed;

static void fail(const char *what, long why)
{
	puts_("HOSTILE: FAILED ");
	puts_(what);
	puts_(": ");
	if (why < 0) {
		putc_('-');
		why = -why;
	}
	putn((u64)why);
	puts_("\n");
	failed++;
}

static void check_rng(int i)
{
	u64 base = devs[i].base, rings = QUEUES + 0x10000 * (u64)i, buf = BUFFERS + 0x1000 * (u64)i;
	int r = setup(base, 1, rings);
	if (r) {
		fail("rng setup", r);
		return;
	}
	memset_(buf, 0, 32);
	desc(rings, 0, buf, 32, D_WRITE, 0);
	long n = submit(base, 0, rings);
	int nonzero = 0;
	for (int j = 0; j < 32; j++)
		nonzero |= r8(buf + j);
	if (n <= 0 || !nonzero) {
		fail("rng request", n);
		return;
	}
	puts_("HOSTILE: rng works: ");
	for (int j = 0; j < 8; j++)
		puthex(r8(buf + j), 2);
	puts_("\n");
	ok++;
}

static void check_blk(int i)
{
	u64 base = devs[i].base, rings = QUEUES + 0x10000 * (u64)i, buf = BUFFERS + 0x1000 * (u64)i;
	int r = setup(base, 1, rings);
	if (r) {
		fail("disk setup", r);
		return;
	}
	u64 hdr = buf, data = buf + 0x200, status = buf + 0x400;
	w32(hdr, 0);        /* VIRTIO_BLK_T_IN */
	w32(hdr + 4, 0);
	w64(hdr + 8, 0);    /* sector 0 */
	memset_(data, 0, 512);
	w8(status, 0xff);
	desc(rings, 0, hdr, 16, D_NEXT, 1);
	desc(rings, 1, data, 512, D_NEXT | D_WRITE, 2);
	desc(rings, 2, status, 1, D_WRITE, 0);
	long n = submit(base, 0, rings);
	if (n < 0 || r8(status) != 0) {
		fail("disk read", n < 0 ? n : r8(status));
		return;
	}
	puts_("HOSTILE: disk works: ");
	for (int j = 0; j < 32 && r8(data + j) >= ' ' && r8(data + j) < 127; j++)
		putc_((char)r8(data + j));
	puts_("\n");
	ok++;
}

static void check_net(int i)
{
	u64 base = devs[i].base, rings = QUEUES + 0x10000 * (u64)i, buf = BUFFERS + 0x1000 * (u64)i;
	int r = setup(base, 2, rings);  /* receiveq and transmitq */
	if (r) {
		fail("net setup", r);
		return;
	}
	/* the 12-byte virtio_net_hdr (all zero: no offloads), then a
	 * broadcast frame of the local experimental EtherType */
	u32 n = 12 + 60;
	memset_(buf, 0, n);
	for (int j = 0; j < 6; j++)
		w8(buf + 12 + j, 0xff);
	w8(buf + 12 + 6, 0x02);
	w8(buf + 12 + 12, 0x88);
	w8(buf + 12 + 13, 0xb5);
	rings += 0x3000;  /* the transmitq's */
	desc(rings, 0, buf, n, 0, 0);
	long used = submit(base, 1, rings);
	if (used < 0) {
		fail("net transmit", used);
		return;
	}
	puts_("HOSTILE: net works: ");
	putn(n - 12);
	puts_(" bytes sent\n");
	ok++;
}

static void check_vsock(int i)
{
	u64 base = devs[i].base, rings = QUEUES + 0x10000 * (u64)i, buf = BUFFERS + 0x1000 * (u64)i;
	int r = setup(base, 3, rings);  /* rx, tx, event */
	if (r) {
		fail("vsock setup", r);
		return;
	}
	u64 cid = r32(base + R_CONFIG) | (u64)r32(base + R_CONFIG + 4) << 32;
	/* a connection request to the host (CID 2), port 5000 */
	memset_(buf, 0, 44);
	w64(buf, cid);          /* src_cid */
	w64(buf + 8, 2);        /* dst_cid */
	w32(buf + 16, 1024);    /* src_port */
	w32(buf + 20, 5000);    /* dst_port */
	w16(buf + 28, 1);       /* type: stream */
	w16(buf + 30, 1);       /* op: request */
	w32(buf + 36, 65536);   /* buf_alloc */
	rings += 0x3000;        /* the tx queue's */
	desc(rings, 0, buf, 44, 0, 0);
	long used = submit(base, 1, rings);
	if (used < 0) {
		fail("vsock transmit", used);
		return;
	}
	puts_("HOSTILE: vsock works: cid ");
	putn(cid);
	puts_("\n");
	ok++;
}

static void check_gpu(int i)
{
	u64 base = devs[i].base, rings = QUEUES + 0x10000 * (u64)i, buf = BUFFERS + 0x1000 * (u64)i;
	int r = setup(base, 2, rings);  /* controlq, cursorq */
	if (r) {
		fail("gpu setup", r);
		return;
	}
	u64 req = buf, resp = buf + 0x100;
	memset_(req, 0, 24);
	w32(req, 0x0100);       /* VIRTIO_GPU_CMD_GET_DISPLAY_INFO */
	memset_(resp, 0, 408);
	desc(rings, 0, req, 24, D_NEXT, 1);
	desc(rings, 1, resp, 408, D_WRITE, 0);
	long used = submit(base, 0, rings);
	if (used < 0 || r32(resp) != 0x1101) {  /* VIRTIO_GPU_RESP_OK_DISPLAY_INFO */
		fail("gpu display info", used < 0 ? used : (long)r32(resp));
		return;
	}
	puts_("HOSTILE: gpu works: ");
	putn(r32(resp + 24 + 8));
	putc_('x');
	putn(r32(resp + 24 + 12));
	puts_("\n");
	ok++;
}

static void check_input(int i)
{
	u64 base = devs[i].base, rings = QUEUES + 0x10000 * (u64)i;
	int r = setup(base, 2, rings);  /* eventq, statusq */
	if (r) {
		fail("input setup", r);
		return;
	}
	w8(base + R_CONFIG, 1);      /* select: VIRTIO_INPUT_CFG_ID_NAME */
	w8(base + R_CONFIG + 1, 0);  /* subsel */
	u32 n = r8(base + R_CONFIG + 2);
	if (n == 0 || n > 128) {
		fail("input name", (long)n);
		return;
	}
	puts_("HOSTILE: input works: ");
	for (u32 j = 0; j < n; j++) {
		u8 c = r8(base + R_CONFIG + 8 + j);
		putc_(c >= ' ' && c < 127 ? (char)c : '?');
	}
	puts_("\n");
	ok++;
}

static void check_console(int i)
{
	static const char msg[] = "HOSTILE: virtio-console works\n";
	u64 base = devs[i].base, rings = QUEUES + 0x10000 * (u64)i, buf = BUFFERS + 0x1000 * (u64)i;
	int r = setup(base, 2, rings);  /* port 0's receiveq and transmitq */
	if (r) {
		fail("console setup", r);
		return;
	}
	u32 n = 0;
	for (; msg[n]; n++)
		w8(buf + n, (u8)msg[n]);
	rings += 0x3000;  /* the transmitq's */
	desc(rings, 0, buf, n, 0, 0);
	long used = submit(base, 1, rings);
	if (used < 0) {
		fail("console write", used);
		return;
	}
	ok++;
}

static void power_off(void)
{
	outb(POWER, (5 << 2) | 0x20);  /* SLP_TYP = S5, SLP_EN */
	for (;;)
		__asm__ volatile("hlt");
}

/* rounds reads rounds=N from the kernel command line, whose address is
 * the boot parameters' cmd_line_ptr (boot protocol: offset 0x228). */
static int rounds(u64 boot_params)
{
	const char *p = (const char *)(u64)r32(boot_params + 0x228);
	for (; p && *p; p++) {
		const char *k = "rounds=";
		int i = 0;
		while (k[i] && p[i] == k[i])
			i++;
		if (k[i])
			continue;
		int n = 0;
		for (p += i; *p >= '0' && *p <= '9'; p++)
			n = n * 10 + (*p - '0');
		return n > 0 ? n : ROUNDS;
	}
	return ROUNDS;
}

void main(u64 boot_params)
{
	int nrounds = rounds(boot_params);
	uart_init();
	puts_("HOSTILE: start\n");
	for (int i = 0; i < VIRTIO_SLOTS; i++) {
		u64 base = VIRTIO_BASE + 0x1000 * (u64)i;
		if (r32(base + R_MAGIC) != 0x74726976 || r32(base + R_DEVICE_ID) == 0)
			continue;
		devs[ndevs].base = base;
		devs[ndevs].id = r32(base + R_DEVICE_ID);
		puts_("HOSTILE: slot ");
		putn((u64)i);
		puts_(": device ");
		putn(devs[ndevs].id);
		puts_("\n");
		ndevs++;
	}

	scramble_garbage();
	for (int round = 0; round < nrounds; round++) {
		for (int i = 0; i < ndevs; i++) {
			attack_driver(devs[i].base);
			attack_registers(devs[i].base);
		}
		/* the slots with no device, and the page after the last one */
		for (int i = 0; i < 4; i++)
			attack_registers(VIRTIO_BASE + 0x1000 * (u64)(VIRTIO_SLOTS - 4 + i));
		/* the 16550: anything in every register, loopback included */
		for (int j = 0; j < 64; j++)
			outb((u16)(COM1 + rnd() % 8), (u8)rnd());
		/* the i8042, short of the reset commands (0xf0-0xff pulse the
		 * reset line, 0xd1 writes the output port with it) */
		for (int j = 0; j < 16; j++) {
			u8 c = (u8)rnd();
			if (c < 0xf0 && c != 0xd1)
				outb(I8042_CMD, c);
			outb(I8042_DATA, (u8)rnd());
			(void)inb(I8042_DATA);
			(void)inb(I8042_CMD);
		}
		/* the ACPI registers, short of S5 and the reset value */
		for (int j = 0; j < 16; j++) {
			u8 v = (u8)rnd();
			if (!((v & 0x20) && ((v >> 2) & 7) == 5))
				outb(POWER, v);
			v = (u8)rnd();
			if (v != 0x42)
				outb(POWER + 2, v);
			(void)inl(POWER);
		}
		/* word and long accesses to byte-wide ports */
		outw(COM1 + 4, (u16)rnd());
		outl(COM1, (u32)rnd());
		scramble_garbage();
	}
	uart_init();
	puts_("HOSTILE: garbage done: ");
	putn((u64)nrounds);
	puts_(" rounds, ");
	putn(accesses);
	puts_(" register accesses\n");
	puts_("HOSTILE: uart works\n");

	for (int i = 0; i < ndevs; i++) {
		switch (devs[i].id) {
		case 1: check_net(i); break;
		case 2: check_blk(i); break;
		case 3: check_console(i); break;
		case 4: check_rng(i); break;
		case 16: check_gpu(i); break;
		case 18: check_input(i); break;
		case 19: check_vsock(i); break;
		}
	}
	puts_("HOSTILE-DONE ok=");
	putn((u64)ok);
	puts_(" failed=");
	putn((u64)failed);
	puts_("\n");
	power_off();
}

/* The 64-bit entry point, 0x200 bytes into the loaded image. */
__asm__(
	".section .head, \"ax\"\n"
	".fill 0x200, 1, 0\n"
	".globl _start\n"
	"_start:\n"
	"	cli\n"
	"	lea stack_top(%rip), %rsp\n"
	"	mov %rsi, %rdi\n"  /* the boot parameters */
	"	call main\n"
	"1:	hlt\n"
	"	jmp 1b\n"
	".section .bss\n"
	".balign 16\n"
	"stack: .space 0x10000\n"
	"stack_top:\n"
	".text\n");
