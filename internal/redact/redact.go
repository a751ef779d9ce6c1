// Package redact keeps the registry of secret values known to one run and
// scrubs them from every string or stream that leaves the process. Every
// renderer and every error path filters through the same Redactor, so a
// secret added once is hidden everywhere.
package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Mask replaces a secret value in output.
const Mask = "[REDACTED]"

// minLen avoids masking trivially short values ("1", "yes") that would
// garble unrelated output; no real credential is this short.
const minLen = 4

// Redactor is a set of secret values. The zero value is ready to use and
// safe for concurrent use.
type Redactor struct {
	mu       sync.RWMutex
	values   []string // longest first, so a secret containing another is masked whole
	replacer *strings.Replacer
}

// New returns an empty Redactor.
func New() *Redactor { return &Redactor{} }

// Add registers secret values; empty and very short values are ignored.
func (r *Redactor) Add(values ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) < minLen {
			continue
		}
		for _, form := range encodedForms(v) {
			if r.has(form) {
				continue
			}
			r.values = append(r.values, form)
			changed = true
		}
	}
	if !changed {
		return
	}
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	pairs := make([]string, 0, 2*len(r.values))
	for _, v := range r.values {
		pairs = append(pairs, v, Mask)
	}
	r.replacer = strings.NewReplacer(pairs...)
}

// encodedForms is v as it appears raw, inside JSON strings (with and without
// HTML escaping) and inside Go-quoted strings (%q). Output is redacted after
// it is encoded, so a secret holding a quote, backslash, '&', '<' or a
// newline (a PEM identity) would otherwise pass through in its escaped form.
func encodedForms(v string) []string {
	forms := []string{v}
	add := func(f string) {
		for _, x := range forms {
			if x == f {
				return
			}
		}
		forms = append(forms, f)
	}
	if b, err := json.Marshal(v); err == nil {
		add(string(b[1 : len(b)-1]))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err == nil {
		b := bytes.TrimSpace(buf.Bytes())
		add(string(b[1 : len(b)-1]))
	}
	q := strconv.Quote(v)
	add(q[1 : len(q)-1])
	return forms
}

func (r *Redactor) has(v string) bool {
	for _, x := range r.values {
		if x == v {
			return true
		}
	}
	return false
}

// String returns s with every registered secret masked.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	rep := r.replacer
	r.mu.RUnlock()
	if rep == nil {
		return s
	}
	return rep.Replace(s)
}

// Error returns the redacted text of err ("" for nil).
func (r *Redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	return r.String(err.Error())
}

// Writer wraps w so that everything written through it is redacted. Writes
// are redacted one call at a time: callers write whole lines or documents,
// so a secret is never split across two writes.
func (r *Redactor) Writer(w io.Writer) io.Writer { return &writer{r: r, w: w} }

type writer struct {
	r *Redactor
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	out := w.r.String(string(p))
	if _, err := io.Copy(w.w, bytes.NewBufferString(out)); err != nil {
		return 0, err
	}
	return len(p), nil
}
