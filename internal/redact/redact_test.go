package redact_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/redact"
)

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"none registered", nil, "token abcd", "token abcd"},
		{"masked", []string{"s3cr3t-value"}, "key=s3cr3t-value!", "key=" + redact.Mask + "!"},
		{"every occurrence", []string{"s3cr3t"}, "s3cr3t and s3cr3t", redact.Mask + " and " + redact.Mask},
		{"longest wins", []string{"abcd", "abcdefgh"}, "x abcdefgh y", "x " + redact.Mask + " y"},
		{"longest wins in any order", []string{"abcdefgh", "abcd"}, "abcd abcdefgh", redact.Mask + " " + redact.Mask},
		{"too short to mask", []string{"abc", "", "  "}, "abc", "abc"},
		{"trimmed", []string{"  padded-secret\n"}, "the padded-secret here", "the " + redact.Mask + " here"},
		{"duplicates", []string{"dup-secret", "dup-secret"}, "dup-secret", redact.Mask},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := redact.New()
			r.Add(tt.secrets...)
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNilAndZeroRedactor(t *testing.T) {
	t.Parallel()
	var nilR *redact.Redactor
	nilR.Add("whatever-secret")
	if got := nilR.String("whatever-secret"); got != "whatever-secret" {
		t.Errorf("nil String = %q", got)
	}
	var zero redact.Redactor
	zero.Add("zero-value-secret")
	if got := zero.String("a zero-value-secret"); got != "a "+redact.Mask {
		t.Errorf("zero-value String = %q", got)
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	r := redact.New()
	r.Add("tok-123456")
	if got := r.Error(nil); got != "" {
		t.Errorf("Error(nil) = %q", got)
	}
	err := fmt.Errorf("login: %w", errors.New("bad token tok-123456"))
	if got := r.Error(err); got != "login: bad token "+redact.Mask {
		t.Errorf("Error = %q", got)
	}
}

func TestWriter(t *testing.T) {
	t.Parallel()
	r := redact.New()
	var buf bytes.Buffer
	w := r.Writer(&buf)
	// Secrets added after the writer was made are masked too.
	r.Add("late-secret-1")
	in := "line with late-secret-1\n"
	n, err := w.Write([]byte(in))
	if err != nil || n != len(in) {
		t.Errorf("Write = %d, %v; want %d, nil", n, err, len(in))
	}
	if got := buf.String(); got != "line with "+redact.Mask+"\n" {
		t.Errorf("written %q", got)
	}
}

// Secrets with characters JSON escapes: the JSON renderer and `config show
// --output json` write through the redacting writer after encoding, so the
// escaped form of a secret must be masked as well.
func TestEncodedForms(t *testing.T) {
	t.Parallel()
	secrets := []string{
		`pa"ss\word-1`,
		"p&ss<wo>rd-2",
		"-----BEGIN PRIVATE KEY-----\nMIIleakykey\n-----END PRIVATE KEY-----",
		"tab\tsecret-3",
		"ünïcode-sécret-4",
	}
	for _, s := range secrets {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			r := redact.New()
			r.Add(s)
			var buf bytes.Buffer
			w := r.Writer(&buf)
			// encoding/json with and without HTML escaping, and Go quoting.
			b, _ := json.Marshal(map[string]string{"message": "failed: " + s})
			w.Write(append(b, '\n'))
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			enc.Encode(map[string]string{"message": s})
			fmt.Fprintf(w, "quoted %q\n", s)
			fmt.Fprintf(w, "raw %s\n", s)
			out := buf.String()
			core := strings.SplitN(strings.TrimSpace(s), "\n", 2)[0]
			if strings.Contains(out, core) || strings.Contains(out, "MIIleakykey") {
				t.Errorf("secret leaks:\n%s", out)
			}
			if strings.Count(out, redact.Mask) != 4 {
				t.Errorf("want 4 masks in:\n%s", out)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	r := redact.New()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(2)
		go func() { defer wg.Done(); r.Add(fmt.Sprintf("secret-%04d", i)) }()
		go func() { defer wg.Done(); _ = r.String("secret-0001 and more") }()
	}
	wg.Wait()
	if got := r.String("secret-0007"); got != redact.Mask {
		t.Errorf("String = %q", got)
	}
}
