// Package cidata builds, in memory, the small ISO 9660 images that carry a
// VM's first-boot data: a volume labelled `cidata` with `user-data`,
// `meta-data` and `network-config` (cloud-init's NoCloud source, which is
// also where Talos's nocloud platform reads its machine config), or one
// labelled `metal-iso` with `config.yaml` (Talos's metal platform with
// talos.config=metal-iso).
//
// Why not a library: the Go ISO writers (kdomanski/iso9660, go-diskfs) stage
// every file in a temporary directory before writing the image, and these
// files hold a Talos machine config — cluster CA keys and tokens — which this
// CLI never writes to disk unless asked. The subset needed here (one root
// directory, a few small files) is short: ECMA-119 with Rock Ridge names, so
// `user-data` keeps its exact spelling on Linux (plain ISO 9660 names are
// upper-case 8.3 and have no '-'). The tests prove it with xorriso, isoinfo
// and blkid, which read it the way cloud-init, udev and Talos do.
package cidata

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Labels the two consumers look for.
const (
	// LabelCloudInit is the NoCloud volume label (cloud-init accepts cidata
	// or CIDATA; so does Talos's nocloud platform).
	LabelCloudInit = "cidata"
	// LabelMetalISO is what talos.config=metal-iso looks for.
	LabelMetalISO = "metal-iso"
)

// File is one file in the image's root directory.
type File struct {
	Name string
	Data []byte
}

const sector = 2048

var reLabel = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
var reName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Build returns the ISO image. ModTime stamps every record (zero: the
// fields say "not specified"), so the same input gives the same bytes.
func Build(label string, modTime time.Time, files ...File) ([]byte, error) {
	if !reLabel.MatchString(label) {
		return nil, fmt.Errorf("cidata: volume label %q: want 1-32 letters, digits, '-' or '_'", label)
	}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(isoName(a.Name), isoName(b.Name)) })
	seen := map[string]string{}
	for _, f := range files {
		if !reName.MatchString(f.Name) || strings.HasPrefix(f.Name, ".") {
			return nil, fmt.Errorf("cidata: file name %q: want letters, digits, '.', '-' or '_'", f.Name)
		}
		n := isoName(f.Name)
		if other, dup := seen[n]; dup {
			return nil, fmt.Errorf("cidata: file names %q and %q collide", other, f.Name)
		}
		seen[n] = f.Name
	}

	// Layout: system area (0-15), primary descriptor (16), terminator
	// (17), L and M path tables (18, 19), root directory (20...), files.
	const pvdSector, termSector, lPathSector, mPathSector, rootSector = 16, 17, 18, 19, 20
	// Directory records do not depend on extents for their size, so size
	// the root directory first with placeholder extents.
	rootSize := dirSize(modTime, files)
	rootSectors := (rootSize + sector - 1) / sector
	next := uint32(rootSector + rootSectors)
	extents := make([]uint32, len(files))
	for i, f := range files {
		extents[i] = next
		next += uint32((len(f.Data) + sector - 1) / sector)
	}
	total := next

	img := make([]byte, int(total)*sector)
	dir := buildDir(modTime, rootSector, uint32(rootSectors*sector), files, extents)
	copy(img[rootSector*sector:], dir)
	for i, f := range files {
		copy(img[int(extents[i])*sector:], f.Data)
	}

	// Path tables: just the root (ECMA-119 9.4).
	pt := func(order binary.ByteOrder) []byte {
		b := make([]byte, 10)
		b[0] = 1 // identifier length
		order.PutUint32(b[2:], rootSector)
		order.PutUint16(b[6:], 1) // parent: itself
		return b
	}
	copy(img[lPathSector*sector:], pt(binary.LittleEndian))
	copy(img[mPathSector*sector:], pt(binary.BigEndian))

	pvd := img[pvdSector*sector : (pvdSector+1)*sector]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	pad(pvd[8:40], "LINUX")
	pad(pvd[40:72], label)
	both32(pvd[80:], total)
	both16(pvd[120:], 1)
	both16(pvd[124:], 1)
	both16(pvd[128:], sector)
	both32(pvd[132:], 10)
	binary.LittleEndian.PutUint32(pvd[140:], lPathSector)
	binary.BigEndian.PutUint32(pvd[148:], mPathSector)
	copy(pvd[156:190], record(modTime, []byte{0}, rootSector, uint32(rootSectors*sector), true, nil))
	pad(pvd[190:318], "")
	pad(pvd[318:446], "")
	pad(pvd[446:574], "")
	pad(pvd[574:702], "RAWKODE-CLOUD")
	pad(pvd[702:813], "")
	copy(pvd[813:], longDate(modTime))
	copy(pvd[830:], longDate(modTime))
	copy(pvd[847:], longDate(time.Time{}))
	copy(pvd[864:], longDate(time.Time{}))
	pvd[881] = 1

	term := img[termSector*sector : (termSector+1)*sector]
	term[0] = 255
	copy(term[1:], "CD001")
	term[6] = 1
	return img, nil
}

// isoName is the ISO 9660 level 2 identifier: upper-case d-characters,
// one dot, version 1. The Rock Ridge NM entry carries the real name.
func isoName(name string) string {
	base, ext, _ := strings.Cut(strings.ToUpper(name), ".")
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
				return r
			}
			return '_'
		}, s)
	}
	return clean(base) + "." + clean(strings.ReplaceAll(ext, ".", "_")) + ";1"
}

func dirSize(modTime time.Time, files []File) int {
	return len(buildDir(modTime, 0, 0, files, make([]uint32, len(files))))
}

// buildDir lays out the root directory's records, never letting one cross
// a sector boundary (ECMA-119 6.8.1.1).
func buildDir(modTime time.Time, self, selfLen uint32, files []File, extents []uint32) []byte {
	var out []byte
	add := func(rec []byte) {
		if room := sector - len(out)%sector; len(rec) > room {
			out = append(out, make([]byte, room)...)
		}
		out = append(out, rec...)
	}
	// "." carries the SUSP indicator and the Rock Ridge ER entry, which is
	// how readers learn the extensions are present.
	add(record(modTime, []byte{0}, self, selfLen, true, slices.Concat(suspSP(), rrPX(0o040555, 2), suspER())))
	add(record(modTime, []byte{1}, self, selfLen, true, rrPX(0o040555, 2)))
	for i, f := range files {
		add(record(modTime, []byte(isoName(f.Name)), extents[i], uint32(len(f.Data)), false, slices.Concat(rrPX(0o100444, 1), rrNM(f.Name))))
	}
	if rem := len(out) % sector; rem != 0 {
		out = append(out, make([]byte, sector-rem)...)
	}
	return out
}

// record is one directory record (ECMA-119 9.1) with its system use area.
func record(modTime time.Time, id []byte, extent, size uint32, dir bool, su []byte) []byte {
	n := 33 + len(id)
	if len(id)%2 == 0 {
		n++ // padding field
	}
	n += len(su)
	if n%2 == 1 {
		su = append(su, 0)
		n++
	}
	r := make([]byte, n)
	r[0] = byte(n)
	both32(r[2:], extent)
	both32(r[10:], size)
	copy(r[18:25], shortDate(modTime))
	if dir {
		r[25] = 2
	}
	both16(r[28:], 1)
	r[32] = byte(len(id))
	copy(r[33:], id)
	copy(r[n-len(su):], su)
	return r
}

// SUSP "SP": the system use area of this directory's "." holds SUSP entries.
func suspSP() []byte { return []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0} }

// SUSP "ER": which extension the entries belong to (RRIP 1.10).
func suspER() []byte {
	const id, des, src = "RRIP_1991A",
		"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS",
		"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE"
	b := []byte{'E', 'R', byte(8 + len(id) + len(des) + len(src)), 1, byte(len(id)), byte(len(des)), byte(len(src)), 1}
	return append(append(append(b, id...), des...), src...)
}

// Rock Ridge "PX": POSIX mode and link count (owner root).
func rrPX(mode uint32, links uint32) []byte {
	b := make([]byte, 36)
	copy(b, "PX")
	b[2], b[3] = 36, 1
	both32(b[4:], mode)
	both32(b[12:], links)
	return b
}

// Rock Ridge "NM": the file's real name.
func rrNM(name string) []byte {
	return append([]byte{'N', 'M', byte(5 + len(name)), 1, 0}, name...)
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func pad(b []byte, s string) {
	copy(b, bytes.Repeat([]byte{' '}, len(b)))
	copy(b, s)
}

// shortDate is the 7-byte directory record date; all zero when unknown.
func shortDate(t time.Time) []byte {
	if t.IsZero() {
		return make([]byte, 7)
	}
	t = t.UTC()
	return []byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

// longDate is the 17-byte volume descriptor date; "0...0" and 0 when unknown.
func longDate(t time.Time) []byte {
	if t.IsZero() {
		return append(bytes.Repeat([]byte{'0'}, 16), 0)
	}
	t = t.UTC()
	return append([]byte(fmt.Sprintf("%04d%02d%02d%02d%02d%02d%02d", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e7)), 0)
}
