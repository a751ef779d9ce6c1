// Package emulator is an in-process S3-compatible object store (Scaleway
// Object Storage's dialect of the S3 REST API, path-style) for the sandbox:
// buckets given at start, objects in memory, the XML error bodies S3
// answers with, and fault injection. It speaks only what rawkode-cloud's
// etcd backups use: PutObject (plain or aws-chunked, as SigV4 streaming
// uploads over plain HTTP send it), GetObject, HeadObject, DeleteObject and
// ListObjectsV2.
//
// Shapes follow the S3 API reference (Amazon S3 API: PutObject, GetObject,
// ListObjectsV2, Error responses), which Scaleway documents as compatible.
// Requests must carry a SigV4 Authorization header for the configured
// access key; the signature itself is not recomputed.
package emulator

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Fault points.
//
//	s3.put-object    PutObject. error: 500 InternalError; unavailable: 503
//	                 SlowDown... ServiceUnavailable; ratelimit: 503 SlowDown;
//	                 hang: no answer.
//	s3.get-object    GetObject and HeadObject, same kinds.
//	s3.list-objects  ListObjectsV2, same kinds.
const (
	FaultPut  = "s3.put-object"
	FaultGet  = "s3.get-object"
	FaultList = "s3.list-objects"
)

// Options configure the emulator.
type Options struct {
	AccessKey string
	Buckets   []string
	Faults    *emulator.Faults
}

// Object is one stored object.
type Object struct {
	Bucket, Key string
	Size        int
	ETag        string
	Modified    time.Time
}

type object struct {
	data     []byte
	etag     string
	modified time.Time
}

// Emulator is a running object store.
type Emulator struct {
	opts   Options
	faults *emulator.Faults
	srv    *httptest.Server

	mu      sync.Mutex
	buckets map[string]map[string]*object
}

// New starts the emulator on 127.0.0.1.
func New(opts Options) *Emulator {
	e := &Emulator{opts: opts, faults: opts.Faults, buckets: map[string]map[string]*object{}}
	if e.faults == nil {
		e.faults = emulator.NewFaults()
	}
	for _, b := range opts.Buckets {
		e.buckets[b] = map[string]*object{}
	}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	return e
}

// URL is the endpoint (path-style).
func (e *Emulator) URL() string { return e.srv.URL }

// Close stops the emulator.
func (e *Emulator) Close() { e.srv.Close() }

// Objects lists every stored object, by bucket and key.
func (e *Emulator) Objects() []Object {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Object
	for b, objs := range e.buckets {
		for k, o := range objs {
			out = append(out, Object{Bucket: b, Key: k, Size: len(o.data), ETag: o.etag, Modified: o.modified})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bucket+"/"+out[i].Key < out[j].Bucket+"/"+out[j].Key })
	return out
}

type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return // HEAD answers carry no body
	}
	_ = xml.NewEncoder(w).Encode(s3Error{Code: code, Message: msg, Resource: r.URL.Path, RequestID: "tx" + strconv.FormatInt(time.Now().UnixNano(), 16)})
}

func (e *Emulator) serve(w http.ResponseWriter, r *http.Request) {
	if !e.authorized(r) {
		writeError(w, r, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	point := FaultGet
	switch {
	case key == "" && r.Method == http.MethodGet:
		point = FaultList
	case r.Method == http.MethodPut:
		point = FaultPut
	}
	if e.fault(w, r, point) {
		return
	}
	e.mu.Lock()
	objs, ok := e.buckets[bucket]
	e.mu.Unlock()
	if !ok {
		writeError(w, r, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
		return
	}
	switch {
	case key == "" && r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2":
		e.list(w, r, bucket)
	case key == "" && r.Method == http.MethodGet && r.URL.Query().Has("location"):
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">fr-par</LocationConstraint>`)
	case key == "":
		writeError(w, r, http.StatusNotImplemented, "NotImplemented", "A header or query you provided implies functionality that is not implemented")
	case r.Method == http.MethodPut:
		e.put(w, r, bucket, key)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		e.mu.Lock()
		o := objs[key]
		e.mu.Unlock()
		if o == nil {
			writeError(w, r, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
			return
		}
		w.Header().Set("ETag", `"`+o.etag+`"`)
		w.Header().Set("Last-Modified", o.modified.UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Length", strconv.Itoa(len(o.data)))
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.Method == http.MethodGet {
			_, _ = w.Write(o.data)
		}
	case r.Method == http.MethodDelete:
		e.mu.Lock()
		delete(objs, key)
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent) // S3 answers 204 whether or not the key existed
	default:
		writeError(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
	}
}

// authorized wants a SigV4 header naming the configured access key.
func (e *Emulator) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !ok {
		return false
	}
	ak, _, _ := strings.Cut(cred, "/")
	return ak == e.opts.AccessKey
}

func (e *Emulator) fault(w http.ResponseWriter, r *http.Request, point string) bool {
	if err := e.faults.Delay(r.Context(), point); err != nil {
		return true
	}
	kind, ok := e.faults.Check(point)
	if !ok {
		return false
	}
	switch kind {
	case emulator.Error:
		writeError(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case emulator.Unavailable:
		writeError(w, r, http.StatusServiceUnavailable, "ServiceUnavailable", "Please reduce your request rate.")
	case emulator.RateLimit:
		writeError(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case emulator.Hang:
		<-r.Context().Done()
	default:
		return false
	}
	return true
}

func (e *Emulator) put(w http.ResponseWriter, r *http.Request, bucket, key string) {
	var body io.Reader = r.Body
	if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		body = newChunkedReader(r.Body)
	}
	data, err := io.ReadAll(io.LimitReader(body, 1<<30))
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
		return
	}
	if dl := r.Header.Get("X-Amz-Decoded-Content-Length"); dl != "" && dl != strconv.Itoa(len(data)) {
		writeError(w, r, http.StatusBadRequest, "IncompleteBody", "The decoded length does not match x-amz-decoded-content-length.")
		return
	}
	sum := md5.Sum(data)
	o := &object{data: data, etag: hex.EncodeToString(sum[:]), modified: time.Now()}
	e.mu.Lock()
	if objs := e.buckets[bucket]; objs != nil {
		objs[key] = o
	}
	e.mu.Unlock()
	w.Header().Set("ETag", `"`+o.etag+`"`)
	w.WriteHeader(http.StatusOK)
}

type listResult struct {
	XMLName     xml.Name   `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name        string     `xml:"Name"`
	Prefix      string     `xml:"Prefix"`
	KeyCount    int        `xml:"KeyCount"`
	MaxKeys     int        `xml:"MaxKeys"`
	IsTruncated bool       `xml:"IsTruncated"`
	Contents    []listItem `xml:"Contents"`
}

type listItem struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int    `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

func (e *Emulator) list(w http.ResponseWriter, r *http.Request, bucket string) {
	prefix := r.URL.Query().Get("prefix")
	res := listResult{Name: bucket, Prefix: prefix, MaxKeys: 1000}
	e.mu.Lock()
	for k, o := range e.buckets[bucket] {
		if strings.HasPrefix(k, prefix) {
			res.Contents = append(res.Contents, listItem{Key: k, LastModified: o.modified.UTC().Format("2006-01-02T15:04:05.000Z"),
				ETag: `"` + o.etag + `"`, Size: len(o.data), StorageClass: "STANDARD"})
		}
	}
	e.mu.Unlock()
	sort.Slice(res.Contents, func(i, j int) bool { return res.Contents[i].Key < res.Contents[j].Key })
	res.KeyCount = len(res.Contents)
	w.Header().Set("Content-Type", "application/xml")
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(res)
}

// chunkedReader decodes aws-chunked bodies ("<hex size>;chunk-signature=…
// \r\n<data>\r\n", ending with a zero-size chunk and optional trailers).
type chunkedReader struct {
	r    *bufio.Reader
	left int64
	done bool
}

func newChunkedReader(r io.Reader) *chunkedReader { return &chunkedReader{r: bufio.NewReader(r)} }

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		sizeHex, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(sizeHex, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("aws-chunked: bad chunk size %q", sizeHex)
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left == 0 && err == nil {
		// Each chunk's data is followed by CRLF.
		if _, err := c.r.Discard(2); err != nil {
			return n, io.ErrUnexpectedEOF
		}
	}
	return n, err
}
