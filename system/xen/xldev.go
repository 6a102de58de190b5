package xen

import (
	"fmt"
	"strings"
)

// maxTAPName is the longest Linux interface name (IFNAMSIZ 16, less the
// NUL).
const maxTAPName = 15

// diskSpec is one DISKSPEC of xl-disk-configuration(5).
type diskSpec struct {
	target, format, vdev, access, devtype string
	script                                string
}

// parseDiskSpec reads the current form ("format=raw, vdev=xvda,
// access=rw, target=/img", or positional "/img,raw,xvda,rw") and the
// deprecated one ("phy:/dev/vg/lv,xvda,w", "file:/img,xvdb:cdrom,r").
func parseDiskSpec(spec string) (diskSpec, error) {
	var d diskSpec
	rest := spec
	var target *string
	// target= consumes the rest of the spec, commas included.
	if i := indexKey(rest, "target="); i >= 0 {
		t := rest[i+len("target="):]
		target = &t
		rest = rest[:i]
	}
	var positional []string
	named := map[string]*string{"format": &d.format, "vdev": &d.vdev, "access": &d.access, "devtype": &d.devtype, "script": &d.script}
	for _, f := range strings.Split(rest, ",") {
		f = strings.TrimLeft(f, " \t")
		k, v, isKV := strings.Cut(f, "=")
		switch {
		case isKV:
			dst, ok := named[k]
			if !ok {
				// backend=, backendtype=, specification=, colo...:
				// nothing Tandem reads; the caller warns.
				continue
			}
			*dst = v
		case f == "cdrom":
			d.devtype = "cdrom"
		case f == "direct-io-safe", f == "discard", f == "no-discard", f == "trusted", f == "untrusted", f == "colo":
		default:
			positional = append(positional, f)
		}
	}
	// The deprecated form: [<format>:][<target>],<vdev>[:<devtype>],<access>.
	if target == nil && len(positional) == 3 && d.format == "" && d.vdev == "" && d.access == "" && isAccess(positional[2]) && looksLikeVdev(positional[1]) {
		t := positional[0]
	strip:
		for {
			prefix, after, ok := strings.Cut(t, ":")
			if !ok || strings.Contains(prefix, "/") {
				break
			}
			switch prefix {
			case "raw", "qcow", "qcow2", "vhd":
				d.format = prefix
			case "iscsi", "nbd", "enbd", "drbd":
				// The rest is the script's, colons and all.
				d.script = "block-" + prefix
				t = after
				break strip
			case "tapdisk", "tap2", "tap", "aio", "ioemu", "file", "phy":
			default:
				return d, fmt.Errorf("%q: unknown prefix %q: the deprecated form is [FORMAT:]TARGET,VDEV,ACCESS (e.g. phy:/dev/vg/lv,xvda,w)", spec, prefix+":")
			}
			t = after
		}
		d.target = t
		d.vdev, d.devtype, _ = strings.Cut(positional[1], ":")
		d.access = positional[2]
		return d, nil
	}
	// Positional parameters fill the slots not given by name, in order.
	slots := []*string{&d.target, &d.format, &d.vdev, &d.access}
	next := 0
	for _, p := range positional {
		for next < len(slots) && *slots[next] != "" {
			next++
		}
		if next == len(slots) {
			return d, fmt.Errorf("%q: too many positional parameters: the form is TARGET,FORMAT,VDEV,ACCESS", spec)
		}
		*slots[next] = p // empty keeps the default
		next++
	}
	if target != nil {
		d.target = *target
	}
	if d.vdev == "" {
		return d, fmt.Errorf("%q: no vdev: xl requires one (e.g. vdev=xvda)", spec)
	}
	if d.access != "" && !isAccess(d.access) {
		return d, fmt.Errorf("%q: access %q: want r, ro, w or rw", spec, d.access)
	}
	return d, nil
}

// indexKey finds key at the start of a comma-separated parameter.
func indexKey(s, key string) int {
	for i := 0; i+len(key) <= len(s); i++ {
		if strings.HasPrefix(s[i:], key) && (i == 0 || strings.TrimLeft(s[:i], " \t") == "" || strings.HasSuffix(strings.TrimRight(s[:i], " \t"), ",")) {
			return i
		}
	}
	return -1
}

func isAccess(s string) bool {
	switch s {
	case "r", "ro", "w", "rw":
		return true
	}
	return false
}

func looksLikeVdev(s string) bool {
	v, _, _ := strings.Cut(s, ":")
	for _, p := range []string{"xvd", "hd", "sd", "vd"} {
		if strings.HasPrefix(v, p) && len(v) > len(p) {
			return true
		}
	}
	return false
}

func (x *xlImport) disks() error {
	s := x.cfg.Get("disk")
	if s == nil {
		return nil
	}
	if !s.Value.IsList {
		return x.errorf(s, "disk", "a single value, want a list: disk = [ %s ]", s.Value)
	}
	for i, e := range s.Value.List {
		if e.IsList {
			return x.errorf(s, "disk", "entry %d is a list %s: give each disk as one string, e.g. 'format=raw, vdev=xvda, access=rw, target=/img'", i+1, e)
		}
		d, err := parseDiskSpec(e.Atom)
		if err != nil {
			return x.errorf(s, "disk", "entry %d: %v", i+1, err)
		}
		if d.format != "" && d.format != "raw" {
			x.warnf(s, "disk", "entry %d (%s): format %s left out: Tandem serves raw images only; convert it (qemu-img convert -O raw %s %s.raw) and add it under disks:", i+1, d.vdev, d.format, d.target, d.target)
			continue
		}
		if d.script != "" {
			x.warnf(s, "disk", "entry %d (%s): script %s left out: Tandem opens the target as a file or block device; set it up on the host and list the device", i+1, d.vdev, d.script)
			continue
		}
		if d.target == "" {
			x.warnf(s, "disk", "entry %d (%s): an empty %s drive has nothing to attach: left out", i+1, d.vdev, orDefault(d.devtype, "disk"))
			continue
		}
		t := d.target
		if !strings.HasPrefix(t, "/") {
			// xl-disk-configuration(5): "/dev will be prepended if the
			// path doesn't start with a '/'".
			t = "/dev/" + t
		}
		ro := d.access == "r" || d.access == "ro" || d.access == "" && d.devtype == "cdrom"
		if d.devtype == "cdrom" {
			x.warnf(s, "disk", "entry %d (%s): a cdrom becomes a read-only virtio disk", i+1, d.vdev)
		}
		disk := Disk{Path: t, ReadOnly: ro, Note: fmt.Sprintf("xl: %s (guest: /dev/vd%c)", d.vdev, 'a'+rune(len(x.g.Disks)%26))}
		x.g.Disks = append(x.g.Disks, disk)
	}
	if len(x.g.Disks) > 0 {
		x.warnf(s, "disk", "the guest sees its disks as virtio-blk /dev/vda, /dev/vdb, ... in list order, not as the vdev names (xvda, ...) given here")
	}
	for _, e := range s.Value.List {
		for _, f := range strings.Split(e.Atom, ",") {
			k, _, ok := strings.Cut(strings.TrimSpace(f), "=")
			if ok && (k == "backend" || k == "backendtype" || k == "specification" || strings.HasPrefix(k, "colo")) {
				x.warnf(s, "disk", "%s= has no Tandem equivalent: the guest's VMM serves its disks itself", k)
			}
		}
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (x *xlImport) nets() error {
	s := x.cfg.Get("vif")
	if s == nil {
		return nil
	}
	if !s.Value.IsList {
		return x.errorf(s, "vif", "a single value, want a list: vif = [ %s ]", s.Value)
	}
	for i, e := range s.Value.List {
		if e.IsList {
			return x.errorf(s, "vif", "entry %d is a list %s: give each NIC as one string, e.g. 'bridge=xenbr0,mac=00:16:3e:00:00:01'", i+1, e)
		}
		kv := map[string]string{}
		for _, f := range strings.Split(e.Atom, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return x.errorf(s, "vif", "entry %d: %q is not KEY=VALUE (xl-network-configuration(5)): e.g. 'bridge=xenbr0,mac=00:16:3e:00:00:01'", i+1, f)
			}
			kv[k] = v
		}
		n := Net{MAC: kv["mac"]}
		if n.MAC != "" {
			if err := checkMAC(n.MAC); err != nil {
				return x.errorf(s, "vif", "entry %d: mac %v", i+1, err)
			}
		}
		n.TAP = kv["vifname"]
		if n.TAP == "" {
			n.TAP = tapName(x.g.Name, i)
		} else if len(n.TAP) > maxTAPName {
			return x.errorf(s, "vif", "entry %d: vifname %q is longer than a Linux interface name (%d characters): shorten it", i+1, n.TAP, maxTAPName)
		}
		how := "create it on the host (ip tuntap add " + n.TAP + " mode tap)"
		if br := kv["bridge"]; br != "" {
			how += " and add it to " + br + " (ip link set " + n.TAP + " master " + br + ")"
			n.Note = "xl: bridge=" + br
		}
		x.warnf(s, "vif", "entry %d: the guest's NIC uses host TAP %s, which Tandem does not create: %s", i+1, n.TAP, how)
		for _, k := range []string{"script", "ip", "rate", "backend", "model", "type", "gatewaydev", "mtu", "vlan", "devid", "trusted", "untrusted"} {
			if _, ok := kv[k]; ok {
				x.warnf(s, "vif", "entry %d: %s= has no Tandem equivalent: the NIC is a virtio-net device on the TAP; configure the host side yourself", i+1, k)
			}
		}
		x.g.Nets = append(x.g.Nets, n)
	}
	return nil
}

// tapName names the TAP of a guest's i-th NIC when vifname= is absent.
func tapName(guest string, i int) string {
	suffix := fmt.Sprintf("-%d", i)
	base := guest
	if len(base)+len(suffix) > maxTAPName {
		base = base[:maxTAPName-len(suffix)]
	}
	return base + suffix
}

// checkMAC checks a MAC as system.yaml reads it: six two-digit hex bytes,
// not multicast.
func checkMAC(s string) error {
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return fmt.Errorf("%q: want six hex bytes separated by colons", s)
	}
	for _, p := range parts {
		if len(p) != 2 || strings.Trim(p, "0123456789abcdefABCDEF") != "" {
			return fmt.Errorf("%q: want six hex bytes separated by colons", s)
		}
	}
	var first byte
	fmt.Sscanf(parts[0], "%x", &first)
	if first&1 != 0 {
		return fmt.Errorf("%q: a multicast address cannot be a NIC's: use 00:16:3e:... (Xen's prefix) or a locally administered one", s)
	}
	return nil
}
