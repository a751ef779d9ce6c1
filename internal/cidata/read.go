package cidata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Read returns the volume label and the files of the root directory of an
// ISO 9660 image, with their Rock Ridge names where present (as Linux shows
// them), else their ISO names without the ";1" version. It reads what
// Build writes, and any other single-directory image of that kind: the
// sandbox uses it to find the config a machine would read at first boot,
// exactly from the bytes the CLI delivered.
func Read(img []byte) (label string, files []File, err error) {
	const pvdOff = 16 * sector
	if len(img) < pvdOff+sector || img[pvdOff] != 1 || string(img[pvdOff+1:pvdOff+6]) != "CD001" {
		return "", nil, errors.New("cidata: not an ISO 9660 image (no primary volume descriptor)")
	}
	pvd := img[pvdOff : pvdOff+sector]
	label = strings.TrimRight(string(pvd[40:72]), " ")
	root := pvd[156 : 156+34]
	extent, size := binary.LittleEndian.Uint32(root[2:6]), binary.LittleEndian.Uint32(root[10:14])
	start, end := int(extent)*sector, int(extent)*sector+int(size)
	if start < 0 || end > len(img) || start > end {
		return "", nil, errors.New("cidata: root directory lies outside the image")
	}
	dir := img[start:end]
	for off := 0; off < len(dir); {
		n := int(dir[off])
		if n == 0 { // records do not cross sectors: skip to the next one
			off = (off/sector + 1) * sector
			continue
		}
		if off+n > len(dir) || n < 34 {
			return "", nil, fmt.Errorf("cidata: malformed directory record at offset %d", off)
		}
		rec := dir[off : off+n]
		off += n
		idLen := int(rec[32])
		if 33+idLen > len(rec) {
			return "", nil, errors.New("cidata: malformed file identifier")
		}
		id := rec[33 : 33+idLen]
		if rec[25]&2 != 0 || (idLen == 1 && (id[0] == 0 || id[0] == 1)) {
			continue // "." / ".." / subdirectories
		}
		su := 33 + idLen
		if idLen%2 == 0 {
			su++ // padding byte after an even-length identifier
		}
		name := rockRidgeName(rec[min(su, len(rec)):])
		if name == "" {
			name, _, _ = strings.Cut(string(id), ";")
			name = strings.TrimSuffix(name, ".")
		}
		fe, fs := int(binary.LittleEndian.Uint32(rec[2:6]))*sector, int(binary.LittleEndian.Uint32(rec[10:14]))
		if fe < 0 || fe+fs > len(img) {
			return "", nil, fmt.Errorf("cidata: file %s lies outside the image", name)
		}
		files = append(files, File{Name: name, Data: bytes.Clone(img[fe : fe+fs])})
	}
	return label, files, nil
}

// rockRidgeName finds the NM entry in a record's system use area.
func rockRidgeName(su []byte) string {
	for len(su) >= 4 {
		l := int(su[2])
		if l < 4 || l > len(su) {
			return ""
		}
		if su[0] == 'N' && su[1] == 'M' && l >= 5 {
			return string(su[5:l])
		}
		su = su[l:]
	}
	return ""
}

// Lookup returns the named file of an image read by Read.
func Lookup(files []File, name string) ([]byte, bool) {
	for _, f := range files {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}
